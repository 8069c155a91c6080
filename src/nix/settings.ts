/**
 * The settings kiln passes on every Nix call. kiln never relies on /etc/nix/nix.conf: Debian's says
 * `sandbox = false` and names a binary cache that cannot be reached from here.
 */
import { existsSync } from "node:fs";

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

export function nixOptionArgs(opts: { store: string; cores: number }): string[] {
  const args = nixSettingArgs();
  if (opts.cores > 0) args.push("--option", "cores", String(opts.cores));
  // A daemon's build users are its own business (an untrusted client may not set them anyway).
  if (opts.store !== "daemon" && !opts.store.includes("://"))
    args.push("--option", "build-users-group", BUILD_USERS_GROUP);
  args.push("--store", opts.store);
  return args;
}
