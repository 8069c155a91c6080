/**
 * Runs buildpacks' bin/detect before a build (so an app no buildpack accepts fails fast), in
 * bubblewrap on stack-build with the app's snapshot read-only at /app and no network.
 */
import { stackExec } from "../stacks/sandbox.js";

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
