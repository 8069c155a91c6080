/** Shared set-up for integration tests: the real config, the real Nix, the real CLI. */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { execa } from "execa";
import { type Config, loadConfig } from "../src/config/config.js";
import { createCore } from "../src/core.js";
import { createLogger } from "../src/log/logger.js";
import type { Nix } from "../src/nix/driver.js";
import { inventoryPath, parseInventory } from "../src/runtime/inventory.js";
import { resolveNode } from "../src/runtime/nodeVersion.js";
import { tempDir } from "./tmp.js";

export const projectDir = join(import.meta.dirname, "..");
export const kilnBin = join(projectDir, "bin", "kiln.js");

export interface TestContext {
  config: Config;
  nix: Nix;
  log: ReturnType<typeof createLogger>;
}

/** The machine's store and kiln's default data directory (shared caches), or a throwaway store. */
export function testContext(overrides: Partial<Config> = {}): TestContext {
  const config = loadConfig(process.env, { projectDir, logLevel: "warn", ...overrides });
  return createCore(config, createLogger("warn"));
}

/** A fresh, empty Nix store under /tmp (a chroot store): tests never delete from the real one. */
export async function throwawayStore(): Promise<{ store: string; dataDir: string }> {
  const dir = tempDir("kiln-store-");
  return { store: join(dir, "store"), dataDir: join(dir, "data") };
}

export async function kiln(args: string[], opts: { env?: Record<string, string> } = {}) {
  return execa("node", [kilnBin, ...args], { reject: false, env: { ...opts.env }, all: true });
}

/** GET with a chosen Host or over a Unix socket (fetch can do neither). */
export function httpGet(opts: {
  socketPath?: string;
  port?: number;
  path: string;
  host?: string;
}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...(opts.socketPath ? { socketPath: opts.socketPath } : { port: opts.port }),
        path: opts.path,
        headers: { host: opts.host ?? "localhost" },
        agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

export type TarEntrySpec = {
  name: string;
  type: "file" | "dir" | "fifo" | "chr" | "link" | "symlink";
  data?: string;
  target?: string;
  mode?: number;
};

/** Writes a tar.gz with hand-made entries (Python's tarfile writes what tar(1) would refuse). */
export function craftTarGz(entries: TarEntrySpec[], opts: { truncate?: number } = {}): string {
  const dir = tempDir("kiln-hostile-");
  const file = join(dir, "src.tar.gz");
  const script = `
import io, json, sys, tarfile
entries = json.loads(sys.argv[2])
with tarfile.open(sys.argv[1], "w:gz") as t:
    for e in entries:
        info = tarfile.TarInfo(e["name"])
        info.mode = e.get("mode", 0o644)
        data = e.get("data", "").encode()
        kind = e["type"]
        if kind == "file":
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
            continue
        info.type = {"dir": tarfile.DIRTYPE, "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE,
                     "link": tarfile.LNKTYPE, "symlink": tarfile.SYMTYPE}[kind]
        info.linkname = e.get("target", "")
        t.addfile(info)
`;
  execFileSync("/usr/bin/python3", ["-c", script, file, JSON.stringify(entries)]);
  if (opts.truncate) {
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length * opts.truncate)));
  }
  return file;
}

/**
 * What the node-web fixture answers: its greeting names the Node its build resolves from
 * engines.node against nix/inventory/node.json (src/runtime, as a build does).
 */
export const NODE_WEB_GREETING = (() => {
  const dir = join(projectDir, "test", "fixtures", "apps", "node-web");
  const range = (
    JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { engines?: { node?: string } }
  ).engines?.node;
  const inv = parseInventory(readFileSync(inventoryPath(projectDir, "node"), "utf8"), "node.json");
  return `hello from node-web on v${resolveNode(inv, { range }).version}\n`;
})();
