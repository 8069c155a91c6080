/**
 * The settings kiln passes on every Nix call. kiln never relies on /etc/nix/nix.conf: Debian's says
 * `sandbox = false` and names a binary cache that cannot be reached from here.
 */
import { existsSync, readFileSync } from "node:fs";
import { KilnError } from "../errors.js";

export const KILN_NIX_OPTIONS: Readonly<Record<string, string>> = {
  sandbox: "true",
  // Never silently build without the sandbox when namespaces are unavailable.
  "sandbox-fallback": "false",
  substituters: "",
  "experimental-features": "nix-command flakes",
  "warn-dirty": "false",
  // A failing download never falls back to building from source behind the user's back.
  fallback: "false",
};

export const DAEMON_SOCKET = "/nix/var/nix/daemon-socket/socket";

/** Resolves "auto" to a concrete store: local as root, else the daemon when its socket exists. */
export function resolveStore(store: string, uid: number, socketExists = existsSync(DAEMON_SOCKET)): string {
  if (store !== "auto") return store;
  if (uid === 0) return "local";
  return socketExists ? "daemon" : "local";
}

/** kiln's settings as `--option NAME VALUE` arguments (for any nix command, and for tests and bench). */
export function nixSettingArgs(): string[] {
  return Object.entries(KILN_NIX_OPTIONS).flatMap(([k, v]) => ["--option", k, v]);
}

/**
 * Nix's build users: with a store of its own (not the daemon's), a root Nix runs each build as an
 * unprivileged member of this group, one user per concurrent build. An empty setting in a host's
 * nix.conf would run builds as root: kiln names the group itself (Debian's nix-bin makes it).
 */
export const BUILD_USERS_GROUP = "nixbld";

/** Where derivations may be built and substituted from besides this machine's own store. */
export interface Distribution {
  /** Nix's `builders` value: `URI SYSTEM KEY JOBS …` machines separated by `;`, or `@FILE`. */
  builders?: string;
  /** Build nothing locally (max-jobs 0): every derivation goes to a builder. */
  remoteOnly?: boolean;
  substituters?: string[];
  trustedKeys?: string[];
  netrcFile?: string;
}

export function nixOptionArgs(opts: { store: string; cores: number } & Distribution): string[] {
  const args = nixSettingArgs();
  if (opts.cores > 0) args.push("--option", "cores", String(opts.cores));
  if (opts.builders) args.push("--option", "builders", opts.builders);
  if (opts.remoteOnly) args.push("--option", "max-jobs", "0");
  if (opts.substituters?.length) {
    // Replaces kiln's empty default: only these caches, and only paths signed by these keys.
    args.push("--option", "substituters", opts.substituters.join(" "));
    args.push("--option", "trusted-public-keys", (opts.trustedKeys ?? []).join(" "));
  }
  if (opts.netrcFile) args.push("--option", "netrc-file", opts.netrcFile);
  // A daemon's build users are its own business (an untrusted client may not set them anyway).
  if (opts.store !== "daemon" && !opts.store.includes("://"))
    args.push("--option", "build-users-group", BUILD_USERS_GROUP);
  args.push("--store", opts.store);
  return args;
}

const MACHINE_URI = /^([a-z][a-z0-9+.-]*:\/\/\S+|[\w.-]+@?[\w.-]*)$/;

/**
 * Refuses a builders or substituters setting Nix would misread or fail on late (mid-build, with a
 * message about max-jobs): a missing machines file, a machine that is not a URI, remote-only with
 * no builder, a substituter without a key to trust.
 */
export function checkDistribution(d: Distribution): void {
  const spec = d.builders?.trim() ?? "";
  let machines = spec;
  if (spec.startsWith("@")) {
    const file = spec.slice(1);
    try {
      machines = readFileSync(file, "utf8");
    } catch (err) {
      throw new KilnError({
        code: "invalid_builders",
        message: `cannot read the machines file ${file}: ${(err as Error).message}`,
        hint: "--builders @FILE names a file of Nix machines, one per line: URI SYSTEM SSH-KEY JOBS",
      });
    }
  }
  const entries = machines
    .split(/[;\n]/)
    .map((l) => l.replace(/#.*/, "").trim())
    .filter(Boolean);
  for (const e of entries) {
    const uri = e.split(/\s+/)[0] ?? "";
    if (!MACHINE_URI.test(uri))
      throw new KilnError({
        code: "invalid_builders",
        message: `not a builder: ${JSON.stringify(uri)}`,
        hint: "Nix's builders syntax: 'ssh-ng://HOST x86_64-linux - 2' (machines separated by ';'), or @FILE",
      });
  }
  if (d.remoteOnly && entries.length === 0)
    throw new KilnError({
      code: "usage",
      message: "--remote-only needs a remote builder",
      hint: "add --builders SPEC (or KILN_BUILDERS), e.g. --builders 'ssh-ng://HOST x86_64-linux'",
    });
  if (d.substituters?.length && !d.trustedKeys?.length)
    throw new KilnError({
      code: "invalid_substituter",
      message: "a substituter needs the public key its paths are signed with",
      hint: "add --trusted-key NAME:BASE64 (the other kiln's `kiln cache key`)",
    });
}
