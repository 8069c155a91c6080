/**
 * A private nix-daemon for the hosted control plane: its socket is bound into the app `kiln`'s
 * dyno (and no other), so that app builds through the daemon while the store stays the daemon's.
 * Started with kiln's own settings (sandbox on, no substituters), whatever the machine's nix.conf
 * says: an untrusted client cannot change those.
 */
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { nixSettingArgs } from "../nix/settings.js";
import { spawnProcess } from "../process/run.js";

export async function startNixDaemon(opts: { dir: string; log: Logger; binDir?: string }) {
  const socket = join(opts.dir, "socket");
  await rm(socket, { force: true });
  const daemon = opts.binDir ? join(opts.binDir, "nix-daemon") : "nix-daemon";
  // It ends with kiln, however kiln ends (a parent-death signal, as the dynos' relays have).
  const proc = spawnProcess("setpriv", ["--pdeathsig", "TERM", "--", daemon, ...nixSettingArgs()], {
    env: { ...(process.env as Record<string, string>), NIX_DAEMON_SOCKET_PATH: socket },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const tail: string[] = [];
  proc.child.stderr?.on("data", (c: Buffer) => {
    tail.push(c.toString());
    if (tail.length > 20) tail.shift();
  });
  for (let i = 0; i < 200 && !existsSync(socket); i++) {
    const ended = await Promise.race([proc.exited, new Promise((r) => setTimeout(() => r(undefined), 50))]);
    if (ended)
      throw new KilnError({
        code: "nix_daemon_failed",
        message: `nix-daemon exited at start: ${tail.join("").trim().split("\n").slice(-3).join(" / ")}`,
        hint: "is nix-bin installed (npm run setup)?",
      });
  }
  if (!existsSync(socket)) {
    proc.child.kill("SIGKILL");
    throw new KilnError({
      code: "nix_daemon_failed",
      message: `nix-daemon did not create ${socket} within 10 s`,
      hint: "check that nothing else holds that path",
    });
  }
  opts.log.info({ socket, pid: proc.pid }, "nix-daemon started");
  return {
    socket,
    async stop() {
      proc.child.kill("SIGTERM");
      const t = setTimeout(() => proc.child.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}
