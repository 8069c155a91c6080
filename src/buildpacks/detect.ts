/**
 * Runs buildpacks' bin/detect before a build (so an app no buildpack accepts fails fast), in
 * bubblewrap on stack-build with the app's snapshot read-only at /app and no network; or, where
 * kiln cannot start bubblewrap (hosted in a dyno, config.detectIn "nix"), in the Nix sandbox.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Nix } from "../nix/driver.js";
import { importExpr } from "../nix/escape.js";
import { stackExec } from "../stacks/sandbox.js";

export async function detectBuildpackInNix(
  nix: Nix,
  projectDir: string,
  buildpackStorePath: string,
  sourceStorePath: string,
): Promise<{ detected: boolean; name: string; output: string }> {
  const [r] = await nix.build([
    {
      expr: importExpr(join(projectDir, "nix", "build", "detect.nix"), {
        buildpack: buildpackStorePath,
        source: sourceStorePath,
      }),
    },
  ]);
  const out = nix.realPath(r?.outputs.out ?? "");
  const [status, stdout, stderr] = await Promise.all(
    ["status", "stdout", "stderr"].map((f) => readFile(join(out, f), "utf8")),
  );
  return {
    detected: (status ?? "").trim() === "0",
    name: (stdout ?? "").trim().split("\n")[0] ?? "",
    output: `${stdout}${stderr}`.trim(),
  };
}

export async function detectBuildpack(
  stackPath: string,
  buildpackPath: string,
  sourcePath: string,
): Promise<{ detected: boolean; name: string; output: string }> {
  const r = await stackExec(stackPath, ["/kiln/buildpack/bin/detect", "/app"], {
    tmpfs: ["/kiln"],
    roBinds: [
      { src: sourcePath, dest: "/app" },
      { src: buildpackPath, dest: "/kiln/buildpack" },
    ],
    cwd: "/app",
  });
  return {
    detected: r.exitCode === 0,
    name: r.stdout.trim().split("\n")[0] ?? "",
    output: `${r.stdout}${r.stderr}`.trim(),
  };
}
