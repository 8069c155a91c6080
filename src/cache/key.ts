/** The binary cache's signing key: DATA_DIR/cache-key.sec, Nix's secret-key format, made on first use. */
import { hostname } from "node:os";
import { join } from "node:path";
import { loadOrCreateSecretKey, type SecretKey } from "../signing/keys.js";

export const CACHE_KEY_FILE = "cache-key.sec";

export function cacheKey(dataDir: string): Promise<SecretKey> {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9.-]+/g, "-")
      .replace(/^[^A-Za-z0-9]+/, "") || "kiln";
  return loadOrCreateSecretKey(join(dataDir, CACHE_KEY_FILE), `kiln-cache-${host}-1`);
}
