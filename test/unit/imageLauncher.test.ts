/**
 * The image's entrypoint (src/image/oci.ts), run by a real sh: $PORT's default, a process type by
 * name (its command quoted however it is written), a command instead, and usage when given nothing.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultProcessType, launcherScript } from "../../src/image/oci.js";
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
});
