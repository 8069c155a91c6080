/** A buildpack's `bin/release` output (YAML) and how releases from a chain combine. */
import { parse } from "yaml";

export interface ReleaseInfo {
  processTypes: Record<string, string>;
  configVars: Record<string, string>;
  addons: string[];
}

export function parseReleaseYaml(text: string, buildpack: string): ReleaseInfo {
  let doc: unknown;
  try {
    doc = text.trim() === "" ? {} : parse(text);
  } catch (err) {
    throw new Error(`${buildpack}: bin/release printed invalid YAML: ${(err as Error).message}`);
  }
  const obj = (doc ?? {}) as Record<string, unknown>;
  if (typeof obj !== "object" || Array.isArray(obj))
    throw new Error(`${buildpack}: bin/release must print a YAML mapping`);
  return {
    processTypes: stringMap(obj.default_process_types, `${buildpack}: default_process_types`),
    configVars: stringMap(obj.config_vars, `${buildpack}: config_vars`),
    addons: Array.isArray(obj.addons) ? obj.addons.map(String) : [],
  };
}

function stringMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw new Error(`${what} must be a mapping`);
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)]));
}

/** Later buildpacks win, as on Heroku; the app's Procfile wins over every buildpack's defaults. */
export function mergeReleases(
  releases: ReleaseInfo[],
  procfile: Record<string, string> | undefined,
): ReleaseInfo {
  const out: ReleaseInfo = { processTypes: {}, configVars: {}, addons: [] };
  for (const r of releases) {
    Object.assign(out.processTypes, r.processTypes);
    Object.assign(out.configVars, r.configVars);
    for (const a of r.addons) if (!out.addons.includes(a)) out.addons.push(a);
  }
  if (procfile) Object.assign(out.processTypes, procfile);
  return {
    processTypes: sortKeys(out.processTypes),
    configVars: sortKeys(out.configVars),
    addons: out.addons,
  };
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
