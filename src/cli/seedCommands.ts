import { resolve } from "node:path";
import type { Command } from "commander";
import { formatBytes } from "../nix/events.js";
import {
  checkSeed,
  type DriftItem,
  ensureSeed,
  exportSeed,
  importSeed,
  pinSeed,
  seedStatus,
} from "../seed/seed.js";
import type { ContextFactory } from "./context.js";
import { printJson, printLines } from "./output.js";

function describeDrift(d: DriftItem): string {
  switch (d.kind) {
    case "moved":
      return `  ${d.package}: ${d.from} → ${d.to}`;
    case "added":
      return `  ${d.package}: new dependency (${d.version})`;
    case "removed":
      return `  ${d.package}: no longer needed (was ${d.version})`;
    case "gone":
      return `  ${d.package}: pinned ${d.version} can no longer be downloaded`;
  }
}

/** `--json` may land on `seed` or on its subcommand (both define it): look at both. */
const wantsJson = (cmd: Command): boolean => !!cmd.optsWithGlobals().json;

export function registerSeedCommands(program: Command, ctx: ContextFactory): void {
  const seed = program
    .command("seed")
    .description("the bootstrap seed: pinned Debian packages and Node, imported into the Nix store")
    .option(
      "--check",
      "report drift against today's archive and registry instead (same as `kiln seed check`)",
    )
    .option("--json", "print machine-readable JSON")
    .addHelpText(
      "after",
      `
With no subcommand, makes sure the pinned seed (nix/seed.lock.json) is in the Nix store: downloads
the pinned .debs (apt-get download) and Node (npm pack), verifies every hash, lays them out and
imports the result with nix-store --add-fixed. Does nothing when the seed is already there.`,
    )
    .action(async (opts: { check?: boolean; json?: boolean }, cmd: Command) => {
      if (opts.check) return runCheck(cmd, opts);
      const c = ctx(cmd.optsWithGlobals(), opts);
      const r = await ensureSeed({ ...c, onStep: c.progress.step });
      c.progress.done();
      if (opts.json) printJson(r);
      else
        printLines([
          r.imported
            ? `imported the seed in ${r.seconds.toFixed(1)} s: ${r.storePath}`
            : `the seed is in the store: ${r.storePath}`,
        ]);
    });

  const runCheck = async (cmd: Command, opts: { json?: boolean }) => {
    const c = ctx(cmd.optsWithGlobals(), opts);
    const drift = await checkSeed({ ...c, onStep: c.progress.step });
    c.progress.done();
    if (opts.json) printJson({ drift, upToDate: drift.length === 0 });
    else if (drift.length === 0) printLines(["the seed's pins match what apt and npm offer today"]);
    else
      printLines([
        `the seed has drifted (${drift.length} change${drift.length === 1 ? "" : "s"}):`,
        ...drift.map(describeDrift),
        "nothing was changed; re-pin with `kiln seed pin` when you want these",
      ]);
    if (drift.length > 0) process.exitCode = 1;
  };

  seed
    .command("check")
    .description("report which pinned packages moved or disappeared; changes nothing (exit 1 on drift)")
    .option("--json", "print machine-readable JSON")
    .action(async (_opts: { json?: boolean }, cmd: Command) => runCheck(cmd, { json: wantsJson(cmd) }));

  seed
    .command("pin")
    .description("re-pin: resolve nix/seed.spec.json today, import the new seed, rewrite nix/seed.lock.json")
    .option("--json", "print machine-readable JSON")
    .action(async (_opts: { json?: boolean }, cmd: Command) => {
      const opts = { json: wantsJson(cmd) };
      const c = ctx(cmd.optsWithGlobals(), opts);
      const r = await pinSeed({ ...c, onStep: c.progress.step });
      c.progress.done();
      if (opts.json) printJson(r);
      else
        printLines([
          `pinned the seed: ${r.lock.storePath} (${r.lock.narHash})`,
          ...(r.changes.length ? ["changes:", ...r.changes.map(describeDrift)] : ["no package changed"]),
        ]);
    });

  seed
    .command("status")
    .description("show the pinned seed and whether it is in the store")
    .option("--json", "print machine-readable JSON")
    .action(async (_opts: { json?: boolean }, cmd: Command) => {
      const opts = { json: wantsJson(cmd) };
      const c = ctx(cmd.optsWithGlobals(), opts);
      const s = await seedStatus(c);
      if (opts.json) printJson(s);
      else
        printLines([
          `${s.storePath}`,
          `NAR hash ${s.narHash}`,
          s.present ? "in the store" : "missing: run `kiln seed`",
        ]);
      if (!s.present) process.exitCode = 1;
    });

  seed
    .command("export")
    .description("write the seed to FILE (a NAR) to move it to another machine")
    .argument("<file>", "where to write it")
    .option("--json", "print machine-readable JSON")
    .action(async (file: string, _opts: { json?: boolean }, cmd: Command) => {
      const opts = { json: wantsJson(cmd) };
      const c = ctx(cmd.optsWithGlobals(), opts);
      const r = await exportSeed(c, resolve(file));
      if (opts.json) printJson({ file: resolve(file), ...r });
      else printLines([`wrote ${file} (${formatBytes(r.bytes)}, ${r.narHash})`]);
    });

  seed
    .command("import")
    .description("import a seed written by `kiln seed export`, verified against the pinned hash")
    .argument("<file>", "the exported seed")
    .option("--json", "print machine-readable JSON")
    .action(async (file: string, _opts: { json?: boolean }, cmd: Command) => {
      const opts = { json: wantsJson(cmd) };
      const c = ctx(cmd.optsWithGlobals(), opts);
      const r = await importSeed({ ...c, onStep: c.progress.step }, resolve(file));
      c.progress.done();
      if (opts.json) printJson(r);
      else
        printLines([
          r.imported ? `imported ${r.storePath}` : `the seed was already in the store: ${r.storePath}`,
        ]);
    });
}
