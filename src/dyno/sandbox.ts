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
 * never on a command line a host user could read with ps. bwrap runs as the app's uid, so the
 * stack and the slug must be reachable by it (see assertReachable).
 */
import { stat } from "node:fs/promises";
import { dirname } from "node:path";
import { KilnError } from "../errors.js";
import type { DynoSize } from "./sizes.js";

/** The fd numbers the dyno process is started with (see startDyno). */
export const DYNO_FDS = {
  args: 3,
  status: 4,
  block: 5,
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
    "--block-fd",
    String(DYNO_FDS.block),
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
export function dynoLauncher(opts: { uid: number; size: DynoSize; command: string; bwrap?: string }): {
  file: string;
  args: string[];
} {
  const nofile = String(opts.size.openFiles);
  return {
    file: "prlimit",
    args: [
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
      PROFILE_LOADER,
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
