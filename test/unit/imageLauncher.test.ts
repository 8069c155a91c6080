/**
 * The image's entrypoint (src/image/oci.ts), run by a real sh: $PORT's default, a process type by
 * name (its command quoted however it is written), a command instead, and usage when given nothing.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultProcessType, imageConfig, launcherScript } from "../../src/image/oci.js";
import { tempDir } from "../tmp.js";

const types = {
  web: 'echo "web on $PORT"',
  worker: "sh -c 'echo \"it'\\''s $1\"' x quoted",
};

function launch(args: string[], env: Record<string, string> = {}) {
  const file = join(tempDir("kiln-launch-"), "launch");
  writeFileSync(file, launcherScript(types), { mode: 0o755 });
  return spawnSync("sh", [file, ...args], {
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "", ...env },
  });
}

describe("the image entrypoint", () => {
  it("runs a process type by name, with $PORT defaulting to 5000 and kept when given", () => {
    expect(launch(["web"]).stdout).toBe("web on 5000\n");
    expect(launch(["web"], { PORT: "8080" }).stdout).toBe("web on 8080\n");
    expect(launch(["worker"]).stdout).toBe("it's quoted\n");
  });

  it("runs anything else as a command, and says how to use it when given nothing", () => {
    expect(launch(["echo", "hello", "there"]).stdout).toBe("hello there\n");
    const none = launch([]);
    expect(none.status).toBe(64);
    expect(none.stderr).toMatch(/process types: web worker/);
  });

  it("defaults to web, else the first type by name, else none", () => {
    expect(defaultProcessType(types)).toBe("web");
    expect(defaultProcessType({ worker: "x", clock: "y" })).toBe("clock");
    expect(defaultProcessType({})).toBeUndefined();
  });

  it("labels the commit when the build knows it, and takes created from the build's epoch", () => {
    const src = {
      app: "shop",
      slugFile: "/nowhere/slug.tgz",
      slugSha256: "a".repeat(64),
      processTypes: types,
      defaults: { NODE_ENV: "production" },
      sourceDateEpoch: 1_700_000_000,
    };
    const layers = [
      { mediaType: "x", digest: "b".repeat(64), size: 1, diffId: "c".repeat(64), createdBy: "t" },
    ];
    const stack = { name: "stack-run", narHash: "sha256-x" };
    const withCommit = JSON.parse(
      imageConfig({ src: { ...src, commit: "d".repeat(40) }, stack, layers }).toString(),
    );
    expect(withCommit.config.Labels["org.opencontainers.image.revision"]).toBe("d".repeat(40));
    expect(withCommit.created).toBe("2023-11-14T22:13:20.000Z");
    expect(withCommit.config.Env).toContain("NODE_ENV=production");
    const without = JSON.parse(imageConfig({ src, stack, layers }).toString());
    expect(without.config.Labels).not.toHaveProperty("org.opencontainers.image.revision");
    // No path of this machine (the slug file) in the config.
    expect(JSON.stringify(without)).not.toContain("/nowhere");
  });
});
