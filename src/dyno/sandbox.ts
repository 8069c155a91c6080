/**
 * The dyno lockdown: bwrap's arguments and the host-side wrappers around it.
 *
 * kiln runs as root, so the chain that starts a dyno first drops everything root has:
 *   bash (root, on the host: closes every descriptor kiln inherited, then moves itself into the
 *     dyno's cgroups, so nothing of the dyno ever runs outside them, even if kiln dies right here)
 *   → prlimit (open files, no core dumps)
 *   → setpriv (the app's own unprivileged uid, no supplementary groups, no new privileges)
 *   → bwrap, unprivileged, in new user/pid/ipc/uts/cgroup/network/mount namespaces, all
 *     capabilities dropped, no further user namespaces, seccomp, a new session, killed with its
 *     parent; the run stack read-only at /, the slug read-only at /app, a size-capped /tmp, a
 *     minimal /dev, a size-capped /dev/shm, a fresh /proc (bwrap makes /proc/sys read-only), no /sys
 *   → the gate (sh inside the sandbox): runs the command only once it has read this run's token
 *     from kiln. If kiln is gone before that (EOF on the pipe) the gate exits and the sandbox with
 *     it; bwrap's own --block-fd would take EOF as "go".
 *
 * bwrap reads its options from a pipe (--args), so /proc/1/cmdline inside shows only
 * `bwrap --args 3 -- sh -c … COMMAND` (no host paths, no token), and the environment (config vars included) is passed as the environment,
 * never on a command line a host user could read with ps. bwrap runs as the app's uid, so the
 * stack and the slug must be reachable by it (see assertReachable).
 */
import { stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { DynoSize } from "../config/dynoSizes.js";
import { KilnError } from "../errors.js";

/** The fd numbers the dyno process is started with (see startDyno). */
export const DYNO_FDS = {
  args: 3,
  status: 4,
  gate: 5,
  seccomp: 6,
  resolvConf: 7,
} as const;

/** With outbound access, names resolve through slirp4netns' DNS forwarder. */
export const OUTBOUND_RESOLV_CONF = "nameserver 10.0.2.3\n";

/**
 * Loads the slug's .profile.d scripts (Heroku's contract: buildpacks put PATH and the like there),
 * then runs the command with the stack's shell. `exec` keeps the app the dyno's main process, so the
 * SIGTERM on stop reaches it directly.
 */
export const PROFILE_LOADER =
  'for f in /app/.profile.d/*.sh; do [ -f "$f" ] && . "$f"; done; exec sh -c "$0"';

/**
 * The gate in front of the profile loader: exec only after reading this run's token (expected in
 * $KILN_GATE, which the app never sees) from DYNO_FDS.gate; EOF or anything else ends the sandbox.
 * kiln's descriptors (the gate, bwrap's status pipe) are closed before the app runs.
 */
export const GATE = `read -r t <&${DYNO_FDS.gate} && [ -n "$KILN_GATE" ] && [ "$t" = "$KILN_GATE" ] || exit 125; unset KILN_GATE t; exec 3<&- 4<&- 5<&- 6<&- 7<&-; ${PROFILE_LOADER}`;

/** The exit code of a gate that was not given the token (kiln died before "go"). */
export const GATE_REFUSED = 125;

/**
 * Root's first step on the host, in front of every process kiln starts for a dyno (the sandbox,
 * its relay, its outbound NAT): close every descriptor from `keep` up (Node passes descriptors kiln
 * inherited without close-on-exec to every child), write its own pid into each cgroup, exec the
 * rest. Args: KEEP [--pause MARKER RUN_ID] DIR… -- COMMAND…; the pause is test-only (testPause.ts):
 * after the first cgroup it writes the marker and waits until kiln is gone.
 */
const ENTER_SCRIPT = [
  "keep=$1; shift",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
  'for f in /proc/$$/fd/*; do n=${f##*/}; if [ "$n" -ge "$keep" ]; then exec {n}>&-; fi; done',
  'pause=; if [ "$1" = --pause ]; then pause=$2; run=$3; shift 3; fi',
  'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 125; shift',
  '  if [ -n "$pause" ]; then',
  `    printf '{"step":"cgroups","runId":"%s","launcherPid":%s}\\n' "$run" $$ > "$pause"`,
  "    while kill -0 $PPID 2>/dev/null; do sleep 0.05; done; pause=",
  "  fi",
  "done",
  'shift; exec "$@"',
].join("\n");

export function enterCgroups(opts: {
  dirs: string[];
  keepFds: number;
  pause?: { marker: string; runId: string };
}): { file: string; args: string[] } {
  return {
    file: "bash",
    args: [
      "-c",
      ENTER_SCRIPT,
      "kiln-enter",
      String(opts.keepFds),
      ...(opts.pause ? ["--pause", opts.pause.marker, opts.pause.runId] : []),
      ...opts.dirs,
      "--",
    ],
  };
}

/**
 * What one app (and no other) is granted beyond the lockdown: the platform's own app (kiln hosted
 * on kiln) runs on the build stack with the Nix store read-only, the Nix daemon's socket and its
 * state directory. Paths under /nix are made on a tmpfs (the stack has an empty /nix for it).
 */
export interface DynoGrant {
  /** Another root than the run stack (the build stack). */
  stackDir?: string;
  binds: { src: string; dest: string; writable?: boolean }[];
}

/** bwrap's options, passed through the --args pipe (bwrap takes the command itself from argv). */
export function dynoBwrapOptions(opts: {
  uid: number;
  hostname: string;
  size: DynoSize;
  stackDir: string;
  slugDir: string;
  outbound?: boolean;
  grant?: DynoGrant;
}): string[] {
  const grantBinds = opts.grant?.binds ?? [];
  const underNix = grantBinds.some((b) => b.dest.startsWith("/nix/"));
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
    "--ro-bind",
    opts.stackDir,
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    // POSIX shared memory, capped like /tmp (bwrap's /dev would leave it an unbounded tmpfs).
    "--size",
    String(opts.size.tmpBytes),
    "--tmpfs",
    "/dev/shm",
    // bwrap's /dev is a tmpfs the app's uid owns: nothing of the app's belongs there.
    "--remount-ro",
    "/dev",
    "--size",
    String(opts.size.tmpBytes),
    "--tmpfs",
    "/tmp",
    "--ro-bind",
    opts.slugDir,
    "/app",
    ...(underNix ? ["--tmpfs", "/nix"] : []),
    ...grantBinds.flatMap((b) => [b.writable ? "--bind" : "--ro-bind", b.src, b.dest]),
    ...(opts.outbound ? ["--ro-bind-data", String(DYNO_FDS.resolvConf), "/etc/resolv.conf"] : []),
    "--seccomp",
    String(DYNO_FDS.seccomp),
    "--json-status-fd",
    String(DYNO_FDS.status),
    "--chdir",
    "/app",
  ];
}

/**
 * `setpriv … --` as a command prefix: the app's uid and gid, no supplementary groups, no
 * capabilities to inherit, no new privileges. `extra` goes before the `--` (e.g. a parent-death
 * signal, which must be set after the uid change that clears it).
 */
export function dropToUid(uid: number, extra: string[] = []): string[] {
  const u = String(uid);
  return [
    "setpriv",
    `--reuid=${u}`,
    `--regid=${u}`,
    "--clear-groups",
    "--no-new-privs",
    "--inh-caps=-all",
    ...extra,
    "--",
  ];
}

/** The host-side chain in front of bwrap (which reads the options above from fd 3). */
export function dynoLauncher(opts: {
  uid: number;
  size: DynoSize;
  command: string;
  bwrap?: string;
  /** The dyno's cgroups, entered before anything else runs. */
  cgroupDirs: string[];
  /** Descriptors below this are kiln's pipes to the sandbox; every other one is closed. */
  keepFds: number;
  pause?: { marker: string; runId: string };
}): {
  file: string;
  args: string[];
} {
  const nofile = String(opts.size.openFiles);
  const enter = enterCgroups({
    dirs: opts.cgroupDirs,
    keepFds: opts.keepFds,
    ...(opts.pause ? { pause: opts.pause } : {}),
  });
  return {
    file: enter.file,
    args: [
      ...enter.args,
      "prlimit",
      `--nofile=${nofile}:${nofile}`,
      "--core=0:0",
      "--",
      ...dropToUid(opts.uid),
      opts.bwrap ?? "bwrap",
      "--args",
      String(DYNO_FDS.args),
      "--",
      "sh",
      "-c",
      GATE,
      opts.command,
    ],
  };
}

/**
 * Dyno environment: Heroku's variables (with its dyno metadata: which slug and release this is),
 * then the release's config, then the user's.
 */
export function dynoEnv(opts: {
  dyno: string;
  port: number | undefined;
  slugSha256?: string;
  releaseVersion?: number;
  releaseVars: Record<string, string>;
  configVars: Record<string, string>;
}): Record<string, string> {
  return {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: "/app",
    LANG: "C.UTF-8",
    TZ: "UTC",
    DYNO: opts.dyno,
    ...(opts.slugSha256 ? { KILN_SLUG_SHA256: opts.slugSha256 } : {}),
    ...(opts.releaseVersion !== undefined ? { KILN_RELEASE_VERSION: `v${opts.releaseVersion}` } : {}),
    ...opts.releaseVars,
    ...opts.configVars,
    ...(opts.port !== undefined ? { PORT: String(opts.port) } : {}),
  };
}

/**
 * bwrap runs as the app's uid, so every directory above the stack and the slug must let others
 * through (o+x). Says which one does not, instead of bwrap's "Can't find source path".
 */
export async function assertReachable(path: string): Promise<void> {
  let dir = path;
  for (;;) {
    const st = await stat(dir);
    if ((st.mode & 0o001) === 0) {
      throw new KilnError({
        code: "path_unreachable",
        message: `dynos run as unprivileged uids, which cannot pass ${dir} (mode ${(st.mode & 0o777).toString(8)}) to reach ${path}`,
        hint: `allow passing through it (chmod o+x ${dir}), or use a data directory outside it (KILN_DATA_DIR)`,
      });
    }
    const parent = dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}
