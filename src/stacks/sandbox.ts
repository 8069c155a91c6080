/**
 * Runs a command with a stack as `/` in a plain bubblewrap sandbox: for trying a stack by hand and for
 * tests. (Dynos get the full lockdown in src/dyno; this is only enough isolation to be honest about
 * what the stack contains: nothing from the host is visible but what is bound in.)
 */
import { KilnError } from "../errors.js";
import { type RunResult, run } from "../process/run.js";

export interface StackExecOptions {
  /** Empty tmpfs mounts (e.g. /kiln, so that binds below it have somewhere to go). */
  tmpfs?: string[];
  /** Host paths bound read-only (`src` at `dest` inside). */
  roBinds?: { src: string; dest: string }[];
  /** Host paths bound read-write. */
  binds?: { src: string; dest: string }[];
  env?: Record<string, string>;
  cwd?: string;
  /** Keep the host's network (default: a new, empty network namespace). */
  shareNet?: boolean;
  inherit?: boolean;
  bwrap?: string;
  signal?: AbortSignal;
}

export const STACK_PATH = "/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin";

export function stackExecArgs(stackPath: string, command: string[], opts: StackExecOptions = {}): string[] {
  if (command.length === 0)
    throw new KilnError({ code: "usage", message: "no command given", hint: "put the command after --" });
  const args = [
    "--unshare-all",
    ...(opts.shareNet ? ["--share-net"] : []),
    "--die-with-parent",
    "--new-session",
    "--ro-bind",
    stackPath,
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
  ];
  for (const t of opts.tmpfs ?? []) args.push("--tmpfs", t);
  for (const b of opts.roBinds ?? []) args.push("--ro-bind", b.src, b.dest);
  for (const b of opts.binds ?? []) args.push("--bind", b.src, b.dest);
  const env = { PATH: STACK_PATH, HOME: "/tmp", LANG: "C.UTF-8", TZ: "UTC", ...opts.env };
  args.push("--clearenv");
  for (const [k, v] of Object.entries(env).sort(([a], [b]) => (a < b ? -1 : 1))) args.push("--setenv", k, v);
  args.push("--chdir", opts.cwd ?? "/", "--", ...command);
  return args;
}

export async function stackExec(
  stackPath: string,
  command: string[],
  opts: StackExecOptions = {},
): Promise<RunResult> {
  return run(opts.bwrap ?? "bwrap", stackExecArgs(stackPath, command, opts), {
    reject: false,
    extendEnv: false,
    env: {},
    ...(opts.inherit ? { inherit: true } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}
