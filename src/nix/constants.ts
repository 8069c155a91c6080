/**
 * What kiln's TypeScript and its Nix files (nix/constants.nix) share, read from the one file both
 * read, nix/constants.json: the system kiln builds for, the busybox path inside the seed, and the
 * source date epoch every slug and stack entry carries.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";

const constantsSchema = z.object({
  system: z.literal("x86_64-linux"),
  busybox: z.string().min(1),
  sourceDateEpoch: z.number().int().nonnegative(),
});

export type NixConstants = z.infer<typeof constantsSchema>;

// Beside src/ and dist/ alike (src/nix/constants.ts, dist/nix/constants.js → ../../nix).
const FILE = new URL("../../nix/constants.json", import.meta.url);

export const NIX_CONSTANTS: NixConstants = constantsSchema.parse(JSON.parse(readFileSync(FILE, "utf8")));
