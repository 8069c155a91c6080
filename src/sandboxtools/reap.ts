/**
 * Before the slug is packed, every other process of the build sandbox is killed and gone: a
 * process a buildpack left running (a daemon, a `sleep && rewrite` in the background) could
 * otherwise change /app while it is packed or /kiln/out after. kiln's tool is not pid 1 (bwrap's
 * init is), so kill(-1) reaches every process of the pid namespace but init and the tool itself;
 * it is repeated until /proc shows no one else (zombies excepted: they run nothing).
 */
import { readdir, readFile } from "node:fs/promises";

/**
 * True only inside the build sandbox: not root, in a pid namespace whose init is bwrap (run
 * directly or through the stack's loader, so its comm may be ld-linux's: the command line tells).
 * Never on a host, where kill(-1) would reach every process of the uid.
 */
async function inBuildSandbox(): Promise<boolean> {
  if (!process.env.KILN_PHASE || process.getuid?.() === 0 || process.pid === 1) return false;
  const argv = (await readFile("/proc/1/cmdline", "utf8").catch(() => "")).split("\0");
  return argv.slice(0, 4).some((a) => a === "bwrap" || a.endsWith("/bwrap"));
}

async function others(): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === 1 || pid === process.pid) continue;
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (stat && state !== "Z" && state !== "X") out.push(pid);
  }
  return out;
}

/** Kills every other process of the sandbox and waits until none is left; returns how many. */
export async function killLeftovers(): Promise<number> {
  if (!(await inBuildSandbox())) return 0;
  const first = await others();
  for (let round = 0; round < 1000; round++) {
    const left = await others();
    if (left.length === 0) return first.length;
    try {
      process.kill(-1, "SIGKILL");
    } catch {
      // ESRCH: nothing left to signal.
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`processes of the build are still running after SIGKILL: ${(await others()).join(", ")}`);
}
