/**
 * The dyno lockdown: bwrap's arguments and the host-side wrappers around it.
 *
 * kiln runs as root, so the chain that starts a dyno first drops everything root has:
 *   prlimit (open files, no core dumps)
 *   → setpriv (the app's own unprivileged uid, no supplementary groups, no new privileges)
 *   → bwrap, unprivileged, in new user/pid/ipc/uts/cgroup/network/mount namespaces, all
 *     capabilities dropped, no further user namespaces, seccomp, a new session, killed with its
 *     parent; the run stack read-only at /, the slug read-only at /app, a size-capped /tmp, a
 *     minimal /dev, a fresh /proc (bwrap makes /proc/sys read-only) and no /sys.
 *
 * bwrap reads its options from a pipe (--args), so /proc/1/cmdline inside shows only
 * `bwrap --args 3 -- sh -c … COMMAND` (no host paths), and the environment (config vars included) is passed as the environment,
 * never on a command line a host user could read with ps. The stack and the slug are bound from
 * open directory fds, so the app's uid needs no access to kiln's data directory.
 */
import type { DynoSize } from "./sizes.js";

/** The fd numbers the dyno process is started with (see startDyno). */
export const DYNO_FDS = { args: 3, status: 4, block: 5, seccomp: 6, stack: 7, slug: 8 } as const;

/**
 * Loads the slug's .profile.d scripts (Heroku's contract: buildpacks put PATH and the like there),
 * then runs the command with the stack's shell. `exec` keeps the app the dyno's main process, so the
 * SIGTERM on stop reaches it directly.
 */
export const PROFILE_LOADER =
  'for f in /app/.profile.d/*.sh; do [ -f "$f" ] && . "$f"; done; exec sh -c "$0"';

/** bwrap's options, passed through the --args pipe (bwrap takes the command itself from argv). */
export function dynoBwrapOptions(opts: { uid: number; hostname: string; size: DynoSize }): string[] {
  const uid = String(opts.uid);
  return [
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--assert-userns-disabled",
    "--cap-drop",
    "ALL",
    "--uid",
    uid,
    "--gid",
    uid,
    "--hostname",
    opts.hostname,
    "--new-session",
    "--die-with-parent",
    "--ro-bind-fd",
    String(DYNO_FDS.stack),
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--size",
    String(opts.size.tmpBytes),
    "--tmpfs",
    "/tmp",
    "--ro-bind-fd",
    String(DYNO_FDS.slug),
    "/app",
    "--seccomp",
    String(DYNO_FDS.seccomp),
    "--json-status-fd",
    String(DYNO_FDS.status),
    "--block-fd",
    String(DYNO_FDS.block),
    "--chdir",
    "/app",
  ];
}

/** The host-side chain in front of bwrap (which reads the options above from fd 3). */
export function dynoLauncher(opts: { uid: number; size: DynoSize; command: string; bwrap?: string }): {
  file: string;
  args: string[];
} {
  const uid = String(opts.uid);
  const nofile = String(opts.size.openFiles);
  return {
    file: "prlimit",
    args: [
      `--nofile=${nofile}:${nofile}`,
      "--core=0:0",
      "--",
      "setpriv",
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      "--no-new-privs",
      "--inh-caps=-all",
      "--",
      opts.bwrap ?? "bwrap",
      "--args",
      String(DYNO_FDS.args),
      "--",
      "sh",
      "-c",
      PROFILE_LOADER,
      opts.command,
    ],
  };
}

/** Dyno environment: Heroku's variables, then the release's config, then the user's. */
export function dynoEnv(opts: {
  dyno: string;
  port: number | undefined;
  releaseVars: Record<string, string>;
  configVars: Record<string, string>;
}): Record<string, string> {
  return {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: "/app",
    LANG: "C.UTF-8",
    TZ: "UTC",
    DYNO: opts.dyno,
    ...opts.releaseVars,
    ...opts.configVars,
    ...(opts.port !== undefined ? { PORT: String(opts.port) } : {}),
  };
}
