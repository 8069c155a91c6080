/** What kiln reads about a dyno's processes from the host's /proc. */

import { readdir, readFile } from "node:fs/promises";
import { constants } from "node:os";

/** True when something in `pid`'s network namespace listens on TCP `port` (IPv4 or IPv6). */
export async function listensOn(pid: number, port: number): Promise<boolean> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const file of ["tcp", "tcp6"]) {
    const text = await readFile(`/proc/${pid}/net/${file}`, "utf8").catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; state 0A is LISTEN.
      if (cols[3] === "0A" && cols[1]?.endsWith(`:${hexPort}`)) return true;
    }
  }
  return false;
}

/** All descendants of `pid` (children first-level and below), from /proc/PID/task/TID/children. */
export async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift() as number;
    for (const tid of await readdir(`/proc/${p}/task`).catch(() => [] as string[])) {
      const text = await readFile(`/proc/${p}/task/${tid}/children`, "utf8").catch(() => "");
      for (const c of text.split(/\s+/).filter(Boolean).map(Number)) {
        out.push(c);
        queue.push(c);
      }
    }
  }
  return out;
}

/** A process's state letter and start time (clock ticks after boot), from /proc/PID/stat. */
async function statOf(pid: number): Promise<{ state: string; startTime: number } | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  if (!text) return undefined;
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const startTime = Number(rest[19]);
  return Number.isFinite(startTime) ? { state: rest[0] ?? "", startTime } : undefined;
}

/** Field 22 of /proc/PID/stat: when the process started (ticks since boot), to tell a reused pid. */
export async function processStartTime(pid: number): Promise<number | undefined> {
  return (await statOf(pid))?.startTime;
}

/**
 * Whether `pid` is still the process that started at `startTime` and is still running: a zombie
 * (exited, not yet reaped — an orphan's new parent may be an init that reaps late) has ended.
 */
export async function sameProcess(pid: number, startTime: number | undefined): Promise<boolean> {
  const st = await statOf(pid);
  if (!st || st.state === "Z" || st.state === "X") return false;
  return startTime === undefined || st.startTime === startTime;
}

export function signalName(num: number): string | undefined {
  for (const [name, n] of Object.entries(constants.signals)) if (n === num) return name;
  return undefined;
}

/** Resident memory of a process in bytes (VmRSS), for the benchmarks and `kiln ps`. */
export async function rssBytes(pid: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(text)?.[1];
  return kb ? Number(kb) * 1024 : undefined;
}

/** Field 5 of /proc/PID/stat: the process group. */
export async function processGroup(pid: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const v = Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[2]);
  return Number.isFinite(v) && text ? v : undefined;
}
