/** `kiln inventory check|update`: the pinned Node and package-manager releases in nix/inventory/. */
import type { Command } from "commander";
import { writeKilnRuntime } from "../bootstrap/kilnRuntime.js";
import { npmRegistry } from "../builds/build.js";
import { KilnError } from "../errors.js";
import { INVENTORY_NAMES, type InventoryName } from "../runtime/inventory.js";
import { type InventoryChange, updateInventories } from "../runtime/update.js";
import type { ContextFactory } from "./context.js";
import { printJson, printLines } from "./output.js";

/** A list of versions, shortened past a few so one busy line (npm) does not flood the terminal. */
function versionList(versions: string[]): string {
  const shown = versions.slice(0, 8).join(", ");
  return versions.length > 8 ? `${shown} and ${versions.length - 8} more` : shown;
}

function describeChange(c: InventoryChange): string {
  switch (c.kind) {
    case "added":
      return `  ${c.inventory}: ${c.versions.length} new release(s): ${versionList(c.versions)}`;
    case "removed":
      return `  ${c.inventory}: ${c.versions.length} release(s) gone from the registry: ${versionList(c.versions)}`;
    case "changed":
      return `  ${c.inventory}: ${c.version} now has integrity ${c.to} (pinned ${c.from})`;
    case "lts":
      return `  ${c.inventory}: line ${c.line} was ${c.from}, is ${c.to}`;
    case "new-file":
      return `  ${c.inventory}: no pinned file yet (${c.versions} releases)`;
  }
}

function parseOnly(value: string, previous: InventoryName[] = []): InventoryName[] {
  const names = value.split(",").map((s) => s.trim());
  for (const n of names) {
    if (!(INVENTORY_NAMES as string[]).includes(n)) {
      throw new KilnError({
        code: "usage",
        message: `no inventory named "${n}"`,
        hint: `choose from ${INVENTORY_NAMES.join(", ")}`,
      });
    }
  }
  return [...previous, ...(names as InventoryName[])];
}

const wantsJson = (cmd: Command): boolean => !!cmd.optsWithGlobals().json;

export function registerInventoryCommands(program: Command, ctx: ContextFactory): void {
  const inventory = program
    .command("inventory")
    .description("the pinned Node.js, npm, yarn and pnpm releases builds choose from (nix/inventory/)")
    .option("--json", "print machine-readable JSON")
    .addHelpText(
      "after",
      `
Builds resolve engines.node, engines.npm/yarn/pnpm and packageManager against these files only, so
the same source always gets the same runtime. They change only when you run \`kiln inventory update\`
(then review and commit the diff). Both commands read the registry npm is configured with
(\`npm config get registry\`); Node's LTS lines come from the npm package node-releases.`,
    );

  const run = async (cmd: Command, write: boolean, only: InventoryName[] | undefined) => {
    const json = wantsJson(cmd);
    const c = ctx(cmd.optsWithGlobals(), { json });
    const r = await updateInventories({
      projectDir: c.config.projectDir,
      dataDir: c.config.dataDir,
      registry: await npmRegistry(),
      write,
      ...(only ? { only } : {}),
      onStep: c.progress.step,
    });
    // kiln's own build runs on what the node and npm inventories resolve for it (its pm is npm);
    // pure Nix reads that pin (nix/bootstrap/runtime.json).
    const forKiln =
      r.written.length > 0 && r.changes.some((ch) => ch.inventory === "node" || ch.inventory === "npm");
    const kilnRuntime = forKiln ? await writeKilnRuntime(c.config.projectDir) : undefined;
    if (kilnRuntime) r.written.push(kilnRuntime);
    c.progress.done();
    if (json) printJson({ ...r, upToDate: r.changes.length === 0 });
    else if (r.changes.length === 0) printLines(["the inventories match what the registry offers today"]);
    else
      printLines([
        write
          ? `rewrote ${r.written.length} inventory file(s):`
          : `the inventories differ from the registry (${r.changes.length} change(s)):`,
        ...r.changes.map(describeChange),
        ...(write ? r.written.map((f) => `  wrote ${f}`) : []),
        write
          ? "review the diff and commit it: builds pick from these files"
          : "nothing was changed; run `kiln inventory update` to take these",
      ]);
    // check: drift is a failure (for CI); update: the drift was the point.
    if (!write && r.changes.length > 0) process.exitCode = 1;
  };

  const onlyOption = [
    "--only <names>",
    `just these inventories, comma-separated (${INVENTORY_NAMES.join(", ")})`,
    parseOnly,
  ] as const;

  inventory
    .command("check")
    .description("compare the pinned inventories with the registry; changes nothing (exit 1 on drift)")
    .option(...onlyOption)
    .option("--json", "print machine-readable JSON")
    .action(async (opts: { only?: InventoryName[] }, cmd: Command) => run(cmd, false, opts.only));

  inventory
    .command("update")
    .description("rewrite the inventories that differ from the registry (new releases, LTS changes)")
    .option(...onlyOption)
    .option("--json", "print machine-readable JSON")
    .action(async (opts: { only?: InventoryName[] }, cmd: Command) => run(cmd, true, opts.only));
}
