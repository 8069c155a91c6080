/** `kiln serve` as its own process (the real CLI, API socket, router, dynos), for end-to-end tests. */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { httpGet, kiln, kilnBin } from "./helpers.js";
import { freePort } from "./slugRunner.js";
import { tempDir } from "./tmp.js";

export interface ServeProcess {
  dataDir: string;
  apiPort: number;
  routerPort: number;
  proc(): ChildProcess;
  log(): string;
  env(): Record<string, string>;
  /** The CLI against this server. */
  k(...args: string[]): ReturnType<typeof kiln>;
  token(): string;
  api(path: string, init?: RequestInit): Promise<Response>;
  viaRouter(path: string, host: string): ReturnType<typeof httpGet>;
  start(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (
    !(await Promise.resolve()
      .then(fn)
      .catch(() => false))
  ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function serveProcess(opts: { prefix: string; dataDir?: string }): Promise<ServeProcess> {
  const dataDir = opts.dataDir ?? tempDir(opts.prefix);
  // The dynos' uids must be able to reach the slugs under it (mkdtemp makes it 0700).
  if (!opts.dataDir) chmodSync(dataDir, 0o711);
  const apiPort = await freePort();
  const routerPort = await freePort();
  let server: ChildProcess | undefined;
  let serverLog = "";
  const self: ServeProcess = {
    dataDir,
    apiPort,
    routerPort,
    proc: () => {
      if (!server) throw new Error("not started");
      return server;
    },
    log: () => serverLog,
    env: () => ({ KILN_DATA_DIR: dataDir, KILN_SERVER: `http://127.0.0.1:${apiPort}` }),
    k: (...args) => kiln(args, { env: self.env() }),
    token: () => readFileSync(join(dataDir, "admin-token"), "utf8").trim(),
    api: (path, init = {}) =>
      fetch(`http://127.0.0.1:${apiPort}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${self.token()}`, ...(init.headers ?? {}) },
      }),
    viaRouter: (path, host) => httpGet({ port: routerPort, path, host }),
    async start() {
      serverLog = "";
      server = spawn(
        process.execPath,
        [kilnBin, "serve", "--port", String(apiPort), "--router-port", String(routerPort)],
        { env: { ...process.env, KILN_DATA_DIR: dataDir }, stdio: ["ignore", "ignore", "pipe"] },
      );
      server.stderr?.on("data", (d) => (serverLog += d));
      const s = server;
      await until("kiln serve to start", () => {
        if (s.exitCode !== null) throw new Error(`kiln serve exited:\n${serverLog}`);
        return serverLog.includes("kiln API on");
      });
    },
    async kill(signal = "SIGTERM") {
      const s = server;
      if (!s || s.exitCode !== null || s.signalCode !== null) return;
      const gone = new Promise((r) => s.once("exit", r));
      s.kill(signal);
      await gone;
    },
  };
  return self;
}

/** A line from /proc/PID/status in kB (VmHWM: the peak resident set). */
export function procStatusKb(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? Number.NaN);
}
