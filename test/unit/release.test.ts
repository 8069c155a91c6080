/** Release policy (src/release) over a real SQLite file: what a new slug and a config change run with. */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { changeConfig, releaseSlug } from "../../src/release/release.js";
import { createApp, getConfig } from "../../src/store/apps.js";
import { openStore, STORE_FILE } from "../../src/store/db.js";
import { currentRelease, listReleases } from "../../src/store/releases.js";
import { tempDir } from "../tmp.js";

const slug = { slugSha256: "a".repeat(64), slugPath: "/nix/store/x-kiln-slug-web/slug.tgz" };

describe("release policy", () => {
  const db = openStore(join(tempDir("kiln-release-"), STORE_FILE));
  const app = createApp(db, "web");

  it("a config change before the first release makes none", () => {
    const r = changeConfig(db, app.id, { GREETING: "hi" });
    expect(r).toEqual({ config: { GREETING: "hi" }, release: undefined });
    expect(listReleases(db, app.id)).toEqual([]);
  });

  it("a new slug runs with the buildpacks' defaults under the app's own config vars", () => {
    const r = releaseSlug(db, {
      appId: app.id,
      buildId: null,
      ...slug,
      processTypes: { web: "node server.js" },
      defaults: { NODE_ENV: "production", GREETING: "default" },
      description: "Deploy 1",
    });
    expect(r).toMatchObject({ version: 1, ...slug, description: "Deploy 1" });
    expect(r.config).toEqual({ NODE_ENV: "production", GREETING: "hi" });
  });

  it("a config change keeps the slug and changes the current release's config, defaults included", () => {
    const { config, release } = changeConfig(db, app.id, { GREETING: null, PORT_NAME: "x" });
    expect(config).toEqual({ PORT_NAME: "x" });
    expect(release).toMatchObject({
      version: 2,
      ...slug,
      processTypes: { web: "node server.js" },
      config: { NODE_ENV: "production", PORT_NAME: "x" },
      description: "Set PORT_NAME; Unset GREETING",
    });
    expect(currentRelease(db, app.id)?.version).toBe(2);
  });

  it("a refused change (a bad key) changes nothing", () => {
    expect(() => changeConfig(db, app.id, { "1BAD": "x" })).toThrow(/not a valid config var name/);
    expect(getConfig(db, app.id)).toEqual({ PORT_NAME: "x" });
    expect(currentRelease(db, app.id)?.version).toBe(2);
  });
});
