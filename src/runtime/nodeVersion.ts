/**
 * `engines.node` → one release of the Node inventory, as Heroku's Node.js buildpack resolves it
 * (its resolve-version tool):
 *   - a node-semver range (`20.x`, `^18.17`, `>=16 <21`, `v20.1.0`, `18 || 20`); `~=14.4` as `~14.4`;
 *     the newest release that satisfies it;
 *   - a wide range (one that also admits the next or previous major) is held to the current LTS
 *     line when that line satisfies it (`>=18` gives the newest LTS, not a newer Current), unless
 *     the app says NODEJS_ALLOW_WIDE_RANGE=true;
 *   - nothing → the current LTS line's newest release.
 *   - `latest` as `*` (so, like any wide range, the current LTS).
 * And, as nvm and `.nvmrc` spell them: `current` and `node` (the newest release), `lts`,
 * `lts/*` (the current LTS), `lts/<codename>` or a bare codename (`iron`) for that LTS line, and
 * `lts/-N` for the Nth LTS line before the current one.
 *
 * "LTS" is the inventory's: a release is LTS when its line has a codename and it is at or past the
 * line's first LTS release; the current LTS line is the newest line with an LTS release in the
 * inventory.
 */
import semver from "semver";
import { KilnError } from "../errors.js";
import { type Inventory, type InventoryEntry, sortedVersions } from "./inventory.js";

export interface NodeResolution {
  version: string;
  entry: InventoryEntry;
  /** `engines.node 20.x → 20.19.5 (newest 20.x)`: what was asked, what was chosen, why. */
  reason: string;
  /** The LTS codename of the chosen release, when it is an LTS release. */
  lts?: string;
}

export interface NodeRequest {
  /** engines.node as written, or undefined. */
  range: string | undefined;
  /** engines.iojs, refused as Heroku does. */
  iojs?: string | undefined;
  allowWideRange?: boolean;
}

/** The LTS codename of `version`, when it is an LTS release. */
export function ltsCodename(inv: Inventory, version: string): string | undefined {
  const line = inv.lts?.lines[String(semver.major(version))];
  return line && semver.gte(version, line.since) ? line.codename : undefined;
}

/** LTS lines with a release in the inventory, newest first: `[{major, codename}]`. */
export function ltsLines(inv: Inventory): { major: number; codename: string }[] {
  const versions = sortedVersions(inv);
  return Object.entries(inv.lts?.lines ?? {})
    .map(([major, l]) => ({ major: Number(major), codename: l.codename, since: l.since }))
    .filter((l) => versions.some((v) => semver.major(v) === l.major && semver.gte(v, l.since)))
    .sort((a, b) => b.major - a.major)
    .map(({ major, codename }) => ({ major, codename }));
}

/** The current LTS line's major (the newest line with an LTS release in the inventory). */
export function currentLtsMajor(inv: Inventory): number {
  const line = ltsLines(inv)[0];
  if (!line) {
    throw new KilnError({
      code: "inventory_invalid",
      message: "the Node inventory (nix/inventory/node.json) names no LTS line with a release",
      hint: "rewrite it with `kiln inventory update node`",
    });
  }
  return line.major;
}

function newestIn(inv: Inventory, pred: (v: string) => boolean): string | undefined {
  return sortedVersions(inv).filter(pred).at(-1);
}

function pick(inv: Inventory, version: string, reason: string): NodeResolution {
  const entry = inv.versions[version] as InventoryEntry;
  const lts = ltsCodename(inv, version);
  return { version, entry, reason, ...(lts ? { lts } : {}) };
}

/** Newest releases of the lines around `range` (or of every recent line): for an error's hint. */
function nearby(inv: Inventory): string {
  const versions = sortedVersions(inv);
  const newestPerLine = new Map<string, string>();
  for (const v of versions) {
    const line = semver.major(v) === 0 ? `0.${semver.minor(v)}` : String(semver.major(v));
    newestPerLine.set(line, v);
  }
  const all = [...newestPerLine.values()];
  return `${all.slice(-8).join(", ")} (and ${all.length > 8 ? `older lines back to ${all[0]}` : "no older"}; nix/inventory/node.json lists all)`;
}

function unavailable(what: string, message: string): KilnError {
  return new KilnError({ code: "node_version_unavailable", message, hint: what });
}

export function resolveNode(inv: Inventory, req: NodeRequest): NodeResolution {
  if (req.iojs !== undefined) {
    throw new KilnError({
      code: "iojs_unsupported",
      message: `package.json asks for io.js (engines.iojs ${JSON.stringify(req.iojs)}); io.js merged back into Node.js in 2015 and kiln has no io.js runtime`,
      hint: `remove engines.iojs and set engines.node instead, e.g. "engines": { "node": "${currentLtsMajor(inv)}.x" }`,
    });
  }
  const lts = currentLtsMajor(inv);
  const raw = req.range?.trim();
  if (!raw) {
    const v = newestIn(inv, (x) => semver.major(x) === lts) as string;
    return pick(inv, v, `no engines.node → ${v} (newest of the current LTS line, ${lts}.x)`);
  }
  const alias = resolveAlias(inv, raw, lts);
  if (alias) return alias;

  // Heroku reads `latest` as `*` (and so holds it to the LTS line, like any wide range).
  const spelled = raw === "latest" ? "*" : raw.startsWith("~=") ? `~${raw.slice(2)}` : raw;
  const range = semver.validRange(spelled, { loose: true });
  if (range === null) {
    throw new KilnError({
      code: "node_version_invalid",
      message: `engines.node ${JSON.stringify(raw)} is not a version range`,
      hint: `use a semver range such as "${lts}.x", "^${lts}.1", ">=18 <23", or an alias: lts/*, latest, lts/<codename>`,
    });
  }
  const satisfies = (v: string) => semver.satisfies(v, range, { loose: true });
  const newest = newestIn(inv, satisfies);
  if (!newest) {
    throw unavailable(
      `available lines (newest of each): ${nearby(inv)}; widen engines.node to one of them`,
      `engines.node ${JSON.stringify(raw)} matches no Node release kiln has (nix/inventory/node.json holds ${Object.keys(inv.versions).length} releases of ${inv.package})`,
    );
  }
  const major = semver.major(newest);
  const wide = satisfies(`${major + 1}.0.0`) || (major > 0 && satisfies(`${major - 1}.0.0`));
  if (wide && !req.allowWideRange) {
    const inLts = newestIn(inv, (v) => semver.major(v) === lts && satisfies(v));
    if (inLts && semver.gt(newest, inLts)) {
      return pick(
        inv,
        inLts,
        `engines.node ${raw} → ${inLts} (a wide range is held to the current LTS line ${lts}.x, as on Heroku; NODEJS_ALLOW_WIDE_RANGE=true gives ${newest})`,
      );
    }
  }
  return pick(inv, newest, `engines.node ${raw} → ${newest} (the newest release it allows)`);
}

function resolveAlias(inv: Inventory, raw: string, lts: number): NodeResolution | undefined {
  const a = raw.toLowerCase();
  if (a === "latest" || a === "x") return undefined; // ranges, not codenames
  if (a === "current" || a === "node") {
    const v = sortedVersions(inv).at(-1) as string;
    return pick(inv, v, `engines.node ${raw} → ${v} (the newest release)`);
  }
  const lines = ltsLines(inv);
  let line: { major: number; codename: string } | undefined;
  if (a === "lts" || a === "lts/*" || a === "stable") line = lines.find((l) => l.major === lts);
  else {
    const back = /^lts\/-(\d+)$/.exec(a);
    const name = a.startsWith("lts/") ? a.slice(4) : a;
    if (back) line = lines[Number(back[1])];
    else if (/^[a-z]+$/.test(name)) {
      line = lines.find((l) => l.codename.toLowerCase() === name);
      if (!line) {
        throw unavailable(
          `LTS lines kiln has: ${lines.map((l) => `${l.codename.toLowerCase()} (${l.major}.x)`).join(", ")}`,
          `engines.node ${JSON.stringify(raw)} names no LTS line kiln knows`,
        );
      }
    } else return undefined;
    if (!line) {
      throw unavailable(
        `LTS lines kiln has: ${lines.map((l) => `${l.codename.toLowerCase()} (${l.major}.x)`).join(", ")}`,
        `engines.node ${JSON.stringify(raw)}: there are only ${lines.length} LTS lines`,
      );
    }
  }
  if (!line) return undefined;
  const { major, codename } = line;
  const since = inv.lts?.lines[String(major)]?.since ?? "0.0.0";
  const v = newestIn(inv, (x) => semver.major(x) === major && semver.gte(x, since)) as string;
  return pick(inv, v, `engines.node ${raw} → ${v} (newest of LTS line ${major}.x, ${codename})`);
}
