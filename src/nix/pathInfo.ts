/** `nix path-info --json` output, validated. */
import { z } from "zod";

export const pathInfoSchema = z.union([
  z.object({
    path: z.string(),
    valid: z.literal(false),
  }),
  z.object({
    path: z.string(),
    valid: z.literal(true).optional(),
    narHash: z.string(),
    narSize: z.number(),
    references: z.array(z.string()),
    closureSize: z.number().optional(),
    deriver: z.string().optional(),
    ca: z.string().optional(),
    registrationTime: z.number().optional(),
    ultimate: z.boolean().optional(),
    signatures: z.array(z.string()).optional(),
  }),
]);

export type PathInfoEntry = z.infer<typeof pathInfoSchema>;

export interface ValidPathInfo {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  closureSize: number | undefined;
  deriver: string | undefined;
  ca: string | undefined;
}

export function parsePathInfo(json: string): { valid: ValidPathInfo[]; missing: string[] } {
  const entries = z.array(pathInfoSchema).parse(JSON.parse(json));
  const valid: ValidPathInfo[] = [];
  const missing: string[] = [];
  for (const e of entries) {
    if ("narHash" in e) {
      valid.push({
        path: e.path,
        narHash: e.narHash,
        narSize: e.narSize,
        references: [...e.references].sort(),
        closureSize: e.closureSize,
        deriver: e.deriver,
        ca: e.ca,
      });
    } else {
      missing.push(e.path);
    }
  }
  return { valid, missing };
}
