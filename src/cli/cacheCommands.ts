/**
 * Trust commands: `kiln verify` (a file against its signed provenance), `kiln provenance key` and
 * `kiln cache key` (the public keys others need to check this kiln's provenance and cache).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { cacheKey } from "../cache/key.js";
import { KilnError } from "../errors.js";
import { PROVENANCE_KEY_FILE, provenanceKey, readBundleFile } from "../provenance/provenance.js";
import { verifyProvenance } from "../provenance/verify.js";
import { parsePublicKey, parseSecretKey } from "../signing/keys.js";
import { hashFile } from "../util/fs.js";
import type { ContextFactory } from "./context.js";
import { formatError, printJson, printLines } from "./output.js";

interface VerifyOpts {
  provenance: string;
  key?: string;
  builderId?: string;
  app?: string;
  commit?: string;
  requireReproducible?: boolean;
  json?: boolean;
}

/** A key given as text (`NAME:BASE64`) or as a file holding it. */
async function publicKeyFrom(arg: string) {
  const text = /^[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9+/]+=*$/.test(arg.trim())
    ? arg
    : await readFile(arg, "utf8").catch(() => {
        throw new KilnError({
          code: "usage",
          message: `--key ${arg} is neither a public key (NAME:BASE64) nor a readable file`,
          hint: "pass what `kiln provenance key` prints on the building kiln",
        });
      });
  return parsePublicKey(text);
}

export function registerCacheCommands(program: Command, ctx: ContextFactory): void {
  program
    .command("verify")
    .description("check a file against its signed provenance (an in-toto bundle of DSSE envelopes)")
    .argument("<file>", "the artifact, e.g. a slug.tgz")
    .requiredOption("--provenance <envelope>", "the .intoto.jsonl bundle (or one DSSE envelope as JSON)")
    .option(
      "--key <public-key>",
      "the builder's provenance key, NAME:BASE64 or a file (default: this kiln's)",
    )
    .option("--builder-id <id>", "require this builder id")
    .option("--app <name>", "require that it was built for this app (else any app's file verifies)")
    .option("--commit <sha>", "require that it was built from this commit (7+ hex digits)")
    .option("--require-reproducible", "require a passed kiln check of the same file, signed by the same key")
    .option("--json", "print every check as JSON")
    .addHelpText(
      "after",
      `
Checks, in order: signature (ed25519 over DSSE's PAE, by --key), payload-type (in-toto),
statement (in-toto Statement v1, SLSA provenance v1), subject (the file's sha256), builder-id,
app, commit, reproducible; the last four only when asked for. Exit 0 verified, 1 not verified (the failed check is named), 2 bad input.`,
    )
    .action(async (file: string, opts: VerifyOpts, cmd: Command) => {
      try {
        const [sha256, bundle, key] = await Promise.all([
          hashFile(file, "sha256").catch(() => {
            throw new KilnError({
              code: "usage",
              message: `cannot read ${file}`,
              hint: "name the artifact file",
            });
          }),
          readBundleFile(opts.provenance).catch((err: unknown) => {
            if (err instanceof KilnError) throw err;
            throw new KilnError({
              code: "usage",
              message: `cannot read --provenance ${opts.provenance}`,
              hint: "kiln build --json names the file as provenance",
            });
          }),
          opts.key ? publicKeyFrom(opts.key) : ownProvenanceKey(ctx, cmd),
        ]);
        const r = verifyProvenance({
          sha256,
          bundle,
          key,
          ...(opts.builderId !== undefined ? { builderId: opts.builderId } : {}),
          ...(opts.app !== undefined ? { app: opts.app } : {}),
          ...(opts.commit !== undefined ? { commit: opts.commit } : {}),
          ...(opts.requireReproducible ? { requireReproducible: true } : {}),
        });
        process.exitCode = r.verified ? 0 : 1;
        if (opts.json) {
          printJson({ verified: r.verified, failed: r.failed ?? null, sha256, checks: r.checks });
          return;
        }
        printLines([
          ...r.checks.map((c) => `${c.ok ? "ok  " : "FAIL"} ${c.check.padEnd(12)} ${c.detail}`),
          r.verified ? `verified: ${file}` : `not verified: the ${r.failed} check failed`,
          ...(r.verified && (opts.app === undefined || opts.commit === undefined)
            ? [
                `not checked: ${[opts.app === undefined ? "the app (--app)" : "", opts.commit === undefined ? "the commit (--commit)" : ""].filter(Boolean).join(" and ")}`,
              ]
            : []),
        ]);
      } catch (err) {
        // Bad input (unreadable files, not an envelope, not a key) is exit 2, never "not verified".
        const f = formatError(err);
        if (opts.json) printJson(f.json);
        process.stderr.write(`${f.text}\n`);
        process.exitCode = 2;
      }
    });

  const prov = program.command("provenance").description("this kiln's provenance signing key");
  prov
    .command("key")
    .description("print the public key that signs this kiln's provenance (made on first use)")
    .action(async (_o: unknown, cmd: Command) => {
      const c = ctx(cmd.optsWithGlobals());
      const key = await provenanceKey(c.config.dataDir);
      printLines([key.publicKey.text]);
    });

  const cache = program.command("cache").description("kiln's signed Nix binary cache (served by kiln serve)");
  cache
    .command("key")
    .description("print the binary cache's public key, for Nix's trusted-public-keys (made on first use)")
    .addHelpText(
      "after",
      `
kiln serve serves what kiln built at http://HOST:PORT/nix-cache, signed with DATA_DIR/cache-key.sec.
Another machine's Nix substitutes from it with:
  --option substituters http://HOST:PORT/nix-cache --option trusted-public-keys "$(kiln cache key)"
  --option netrc-file FILE     (FILE: machine HOST login kiln password ADMIN_TOKEN)
or KILN_CACHE_PUBLIC=1 on the server for no token.`,
    )
    .action(async (_o: unknown, cmd: Command) => {
      const c = ctx(cmd.optsWithGlobals());
      printLines([(await cacheKey(c.config.dataDir)).publicKey.text]);
    });
}

async function ownProvenanceKey(ctx: ContextFactory, cmd: Command) {
  const c = ctx(cmd.optsWithGlobals());
  const file = join(c.config.dataDir, PROVENANCE_KEY_FILE);
  const text = await readFile(file, "utf8").catch(() => {
    throw new KilnError({
      code: "usage",
      message: `no --key given and this kiln has no provenance key (${file})`,
      hint: 'pass the building kiln\'s key: --key "$(kiln provenance key)" run there',
    });
  });
  return parseSecretKey(text).publicKey;
}
