/**
 * What `kiln check` varies between builds: the table in nix/build/variations.json (shared with the
 * Nix side), and the settings one build of a check gets. Build 0 is the ordinary build; build i
 * takes each switched-on variation's values[i mod n]. An empty setting means "the ordinary value"
 * to nix/build/phase.sh and the builder.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { KilnError } from "../errors.js";

/** The settings phase.sh (and the builder, for buildDir and fsOrder) reads. */
export const SETTING_NAMES = [
  "buildDir",
  "faketime",
  "tz",
  "lang",
  "umask",
  "hostname",
  "user",
  "cpus",
  "env",
  "fsOrder",
] as const;
export type SettingName = (typeof SETTING_NAMES)[number];
export type CheckSettings = Record<SettingName | "extraEnv", string>;

// phase.sh splits its environment and bwrap arguments on white space: values never have any.
const value = z.string().regex(/^[A-Za-z0-9_+/.:=@-]*$/, "no white space or shell characters");

const tableSchema = z.object({
  variations: z.record(
    z.string().regex(/^[a-z][a-z-]*$/),
    z.object({ about: z.string(), setting: z.enum(SETTING_NAMES), values: z.array(value).min(2) }),
  ),
  extraEnv: z.object({ name: z.string().regex(/^[A-Z][A-Z0-9_]*$/), value }),
});
export type VariationTable = z.infer<typeof tableSchema>;

export async function loadVariations(projectDir: string): Promise<VariationTable> {
  const file = join(projectDir, "nix", "build", "variations.json");
  return tableSchema.parse(JSON.parse(await readFile(file, "utf8")));
}

export function variationNames(table: VariationTable): string[] {
  return Object.keys(table.variations);
}

/** The variations switched on: all, or only `only`, less `skip`. Unknown names are an error. */
export function selectVariations(
  table: VariationTable,
  opts: { only?: string[]; skip?: string[] },
): string[] {
  const names = variationNames(table);
  for (const n of [...(opts.only ?? []), ...(opts.skip ?? [])]) {
    if (!names.includes(n)) {
      throw new KilnError({
        code: "invalid_variation",
        message: `there is no variation "${n}"`,
        hint: `the variations are: ${names.join(", ")}`,
      });
    }
  }
  const on = opts.only && opts.only.length > 0 ? opts.only : names;
  return names.filter((n) => on.includes(n) && !(opts.skip ?? []).includes(n));
}

/** Build `index`'s settings: "" (the ordinary value) for each setting not varied in that build. */
export function settingsFor(table: VariationTable, enabled: string[], index: number): CheckSettings {
  const s = Object.fromEntries([...SETTING_NAMES, "extraEnv"].map((k) => [k, ""])) as CheckSettings;
  if (index === 0) return s;
  for (const name of enabled) {
    const v = table.variations[name];
    if (!v) continue;
    const chosen = v.values[index % v.values.length] ?? "";
    s[v.setting] = chosen === v.values[0] ? "" : chosen;
  }
  if (s.env !== "") s.extraEnv = `${table.extraEnv.name}=${table.extraEnv.value}`;
  return s;
}

/** The variations a build's settings actually change, with the values (for reports). */
export function variedIn(
  table: VariationTable,
  settings: CheckSettings,
): { name: string; about: string; value: string }[] {
  return Object.entries(table.variations)
    .filter(([, v]) => settings[v.setting] !== "")
    .map(([name, v]) => ({ name, about: v.about, value: settings[v.setting] }));
}
