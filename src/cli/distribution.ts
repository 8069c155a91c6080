/** The options `kiln build` and `kiln serve` share for Nix's remote builders and substituters. */
import type { Command } from "commander";
import { collect } from "./args.js";

export function addDistributionOptions(cmd: Command): Command {
  return cmd
    .option(
      "--builders <spec>",
      "hand derivations to Nix remote builders: Nix's builders syntax ('ssh-ng://HOST x86_64-linux - 2', ';' between machines) or @FILE (env KILN_BUILDERS)",
    )
    .option("--remote-only", "build nothing on this machine (Nix's max-jobs 0; env KILN_REMOTE_ONLY=1)")
    .option(
      "--substituter <url>",
      "substitute from this binary cache, e.g. another kiln's http://HOST:PORT/nix-cache (repeatable; env KILN_SUBSTITUTERS)",
      collect,
    )
    .option(
      "--trusted-key <key>",
      "accept substituted paths signed by this key, NAME:BASE64 (the other kiln's `kiln cache key`; repeatable; env KILN_TRUSTED_KEYS)",
      collect,
    );
}

export const DISTRIBUTION_HELP = `
Remote builders: Nix copies each derivation's inputs to a builder, builds it there in that
machine's sandbox and copies the outputs back; the slug is the same bytes as a local build's.
Where each build ran is in the build record (builtOn) and /metrics (kiln_builds_by_machine).
A cache that needs a token: KILN_NETRC_FILE=FILE with 'machine HOST login kiln password TOKEN'.`;
