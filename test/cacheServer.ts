/** `kiln serve --no-dynos` as its own process (the real CLI and API), for the cache and remote tests. */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kiln, kilnBin } from "./helpers.js";
import { until } from "./serveProcess.js";
import { freePort } from "./slugRunner.js";

export interface CacheServer {
  dataDir: string;
  port: number;
  url: string;
  token(): string;
  /** A netrc file Nix reads to send the admin token (Basic) to this server. */
  netrc(): string;
  k(...args: string[]): ReturnType<typeof kiln>;
  api(path: string, init?: RequestInit): Promise<Response>;
  stop(): Promise<void>;
}

export async function startCacheServer(
  opts: { prefix: string; env?: Record<string, string>; args?: string[] } = { prefix: "kiln-cache-" },
): Promise<CacheServer> {
  const dataDir = mkdtempSync(join(tmpdir(), opts.prefix));
  chmodSync(dataDir, 0o711);
  const port = await freePort();
  let log = "";
  const server: ChildProcess = spawn(
    process.execPath,
    [kilnBin, "serve", "--no-dynos", "--port", String(port), ...(opts.args ?? [])],
    { env: { ...process.env, KILN_DATA_DIR: dataDir, ...opts.env }, stdio: ["ignore", "ignore", "pipe"] },
  );
  server.stderr?.on("data", (d) => (log += d));
  await until("kiln serve to start", () => {
    if (server.exitCode !== null) throw new Error(`kiln serve exited:\n${log}`);
    return log.includes("kiln API on");
  });
  const url = `http://127.0.0.1:${port}`;
  const token = () => readFileSync(join(dataDir, "admin-token"), "utf8").trim();
  return {
    dataDir,
    port,
    url,
    token,
    netrc() {
      const file = join(dataDir, "test-netrc");
      writeFileSync(file, `machine 127.0.0.1 login kiln password ${token()}\n`, { mode: 0o600 });
      return file;
    },
    k: (...args) => kiln(args, { env: { KILN_DATA_DIR: dataDir, KILN_SERVER: url, KILN_TOKEN: token() } }),
    api: (path, init = {}) =>
      fetch(`${url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${token()}`, ...(init.headers ?? {}) },
      }),
    async stop() {
      if (server.exitCode !== null || server.signalCode !== null) return;
      const gone = new Promise((r) => server.once("exit", r));
      server.kill("SIGTERM");
      await gone;
    },
  };
}
