/**
 * Runs a slug's `web` process roughly the way a dyno does (src/dyno is the real, locked-down runtime;
 * this is the light version the build tests use to check a slug serves): the
 * slug unpacked, stack-run as / in bubblewrap, the slug at /app read-only, HOME=/app, $PORT, the
 * .profile.d scripts sourced, the command run by the stack's shell.
 */
import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import * as tar from "tar";
import { stackExecArgs } from "../src/stacks/sandbox.js";
import { tempDir } from "./tmp.js";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

export interface SlugResponse {
  status: number;
  body: string;
  headers: Headers;
  output: string;
}

export async function runSlugWeb(
  runStack: string,
  slugPath: string,
  command: string,
  paths: string[] = ["/"],
): Promise<SlugResponse[]> {
  const dir = tempDir("kiln-slug-");
  await tar.extract({ file: slugPath, cwd: dir });
  const port = await freePort();
  const args = stackExecArgs(
    runStack,
    ["sh", "-c", 'for f in /app/.profile.d/*.sh; do [ -f "$f" ] && . "$f"; done; exec sh -c "$0"', command],
    {
      shareNet: true,
      roBinds: [{ src: join(dir, "app"), dest: "/app" }],
      env: { HOME: "/app", PORT: String(port) },
      cwd: "/app",
    },
  );
  const child = spawn("bwrap", args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  try {
    const deadline = Date.now() + 30_000;
    const results: SlugResponse[] = [];
    for (const path of paths) {
      for (;;) {
        try {
          const r = await fetch(`http://127.0.0.1:${port}${path}`);
          results.push({ status: r.status, body: await r.text(), headers: r.headers, output });
          break;
        } catch (err) {
          if (Date.now() > deadline || child.exitCode !== null)
            throw new Error(
              `the web process did not answer on ${port}: ${(err as Error).message}\n${output}`,
            );
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    }
    return results;
  } finally {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
}
