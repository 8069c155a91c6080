/**
 * An app's extra fixed-output fetches: files its install scripts would download (Prisma's engines,
 * Puppeteer's browser), declared in the app's `kiln.json` as URL + hash, so that kiln fetches them
 * as pinned inputs (Nix's builtin fetcher, on the host, from the registry's origin or the operator's
 * KILN_FETCH_ALLOW only) and the build, still offline, finds them at /kiln/fetches/NAME with an
 * environment variable naming the file:
 *
 *   { "fetches": [ { "name": "schema-engine", "url": "https://…/schema-engine.gz",
 *                    "sha256": "<hex>", "unpack": "gzip", "executable": true,
 *                    "env": { "PRISMA_SCHEMA_ENGINE_BINARY": "" } } ] }
 *
 * `env` maps a variable to a path inside the fetch ("" is the fetch itself); `unpack` is none, gzip
 * (one file), tar (any compression busybox tar reads) or zip (then the fetch is a directory).
 * nix/build/default.nix makes the derivations; nix/build/phase.sh places them in both phases.
 */
import { z } from "zod";
import { KilnError } from "../errors.js";
import { allowedOrigins, originOf } from "../source/origins.js";
import { readTextBeneath } from "../util/beneath.js";

/** What kiln hands nix/build/default.nix: the hash always in SRI form. */
export interface ExtraFetch {
  name: string;
  url: string;
  hash: string;
  unpack: "none" | "gzip" | "tar" | "zip";
  executable: boolean;
  env: Record<string, string>;
}

const SUB_PATH = /^(?:[A-Za-z0-9._+-]+(?:\/[A-Za-z0-9._+-]+)*)?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const fetchSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, "lowercase letters, digits, '.', '_' and '-', at most 64"),
    url: z.string().regex(/^https?:\/\/[^\s]+$/, "an http(s) URL"),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits")
      .optional(),
    integrity: z
      .string()
      .regex(/^sha(256|512)-[A-Za-z0-9+/]+={0,2}$/, "an SRI hash, sha256-… or sha512-…")
      .optional(),
    unpack: z.enum(["none", "gzip", "tar", "zip"]).default("none"),
    executable: z.boolean().default(false),
    env: z
      .record(
        z.string().regex(ENV_NAME, "an environment variable name"),
        z
          .string()
          .regex(SUB_PATH, "a relative path inside the fetch, without spaces")
          .refine((p) => !p.split("/").some((s) => s === "." || s === ".."), "no '.' or '..' segments"),
      )
      .default({}),
  })
  .strict()
  // Pinned by its hash, so plain http is as safe as https (Nix checks the hash before anyone reads it).
  .refine(
    (f) => (f.sha256 === undefined) !== (f.integrity === undefined),
    "give exactly one of sha256 and integrity",
  );

const kilnJsonSchema = z.object({ fetches: z.array(fetchSchema).max(64).default([]) }).passthrough();

// Names kiln's own build environment sets (nix/build/phase.sh): an entry may not override them.
const RESERVED_ENV = new Set([
  "PATH",
  "HOME",
  "TMPDIR",
  "LANG",
  "TZ",
  "SOURCE_DATE_EPOCH",
  "STACK",
  "NIX_BUILD_CORES",
  "MAKEFLAGS",
  "LD_PRELOAD",
  "LD_LIBRARY_PATH",
  "NODE_OPTIONS",
]);

/** The app's `kiln.json` fetches (none without the file), checked; a bad file is a typed error. */
export async function readExtraFetches(
  sourceDir: string,
  opts: { registry: string | undefined; allow: readonly string[] },
): Promise<ExtraFetch[]> {
  const text = await readTextBeneath(sourceDir, "kiln.json", { maxBytes: 1024 * 1024 });
  if (text === undefined) return [];
  return parseExtraFetches(text, opts);
}

export function parseExtraFetches(
  text: string,
  opts: { registry: string | undefined; allow: readonly string[] },
): ExtraFetch[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw invalid(`kiln.json is not valid JSON (${(e as Error).message})`);
  }
  const parsed = kilnJsonSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `  ${i.path.join(".") || "(top)"}: ${i.message}`);
    throw invalid(`kiln.json's fetches are malformed:\n${issues.join("\n")}`);
  }
  const origins = allowedOrigins(opts.registry, opts.allow);
  const seenNames = new Set<string>();
  const seenEnv = new Set<string>();
  return parsed.data.fetches.map((f, i) => {
    const at = `kiln.json fetches[${i}] (${f.name})`;
    if (seenNames.has(f.name)) throw invalid(`${at}: the name is used twice`);
    seenNames.add(f.name);
    const origin = originOf(f.url);
    // Nix's fetcher runs on the host's network: only where dependency tarballs may come from.
    if (!origin || !origins.includes(origin))
      throw new KilnError({
        code: "invalid_fetch",
        message: `${at}: ${origin ?? f.url} is not an origin kiln fetches from (${origins.join(", ") || "none"})`,
        hint: "kiln fetches from npm's registry and the operator's KILN_FETCH_ALLOW origins only; ask the operator to allow the host, or mirror the file there",
        details: { field: `fetches.${i}.url` },
      });
    for (const name of Object.keys(f.env)) {
      if (RESERVED_ENV.has(name) || name.startsWith("KILN_") || name.startsWith("npm_config_"))
        throw invalid(`${at}: ${name} is set by kiln's build environment and cannot name a fetch`);
      if (seenEnv.has(name)) throw invalid(`${at}: ${name} is named by two fetches`);
      seenEnv.add(name);
    }
    if (f.unpack === "none" || f.unpack === "gzip") {
      for (const [name, sub] of Object.entries(f.env))
        if (sub !== "")
          throw invalid(`${at}: ${name}: a fetch that is one file has no path inside it (use "")`);
    }
    const hash = f.integrity ?? `sha256-${Buffer.from(f.sha256 ?? "", "hex").toString("base64")}`;
    return { name: f.name, url: f.url, hash, unpack: f.unpack, executable: f.executable, env: f.env };
  });
}

function invalid(message: string): KilnError {
  return new KilnError({
    code: "invalid_fetch",
    message,
    hint: 'each entry: {"name": "engine", "url": "https://…", "sha256": "<hex>", "env": {"VAR": ""}} (README: Install-time downloads)',
  });
}
