/**
 * The crash loop (issue 19): 30 rounds of `kiln serve` killed with SIGKILL at a random moment while
 * it takes config writes, builds and scaling through its API. Afterwards: no acknowledged write
 * lost, no build stuck, no dyno process left, no cgroup, run directory or torn temp file left, and
 * SQLite's integrity check passes. Rounds: CRASH_ROUNDS (default 30).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { appendFileSync, chmodSync, readFileSync } from "node:fs";
import { cp, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { detectCgroups } from "../../src/dyno/cgroups.js";
import { instanceId } from "../../src/dyno/instance.js";
import { stateDir } from "../../src/dyno/state.js";
import { openStore, STORE_FILE } from "../../src/store/db.js";
import { processesOf } from "../dynoHelpers.js";
import { kiln, kilnBin, projectDir, testContext } from "../helpers.js";
import { freePort } from "../slugRunner.js";
import { tempDir } from "../tmp.js";

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 30);
const APP = "loop";

describe("kill -9 of kiln serve, again and again", () => {
  const dataDir = tempDir("kiln-crashloop-");
  chmodSync(dataDir, 0o711);
  const runDir = testContext({ dataDir }).config.runDir;
  let apiPort = 0;
  let routerPort = 0;
  let log = "";
  const token = () => readFileSync(join(dataDir, "admin-token"), "utf8").trim();
  const api = (method: string, path: string, body?: unknown, type = "application/json") =>
    fetch(`http://127.0.0.1:${apiPort}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token()}`,
        ...(body !== undefined ? { "content-type": type } : {}),
      },
      ...(body !== undefined
        ? { body: type === "application/json" ? JSON.stringify(body) : new Uint8Array(body as Buffer) }
        : {}),
    });

  const start = async (): Promise<ChildProcess> => {
    log = "";
    const server = spawn(
      process.execPath,
      [kilnBin, "serve", "--port", String(apiPort), "--router-port", String(routerPort)],
      {
        env: { ...process.env, KILN_DATA_DIR: dataDir, KILN_RUN_DIR: runDir },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    server.stderr?.on("data", (d) => {
      log += d;
      appendFileSync(join(dataDir, "serve.log"), d);
    });
    const deadline = Date.now() + 120_000;
    while (!log.includes("kiln API on")) {
      if (Date.now() > deadline || server.exitCode !== null)
        throw new Error(`kiln serve did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return server;
  };
  const stopped = (server: ChildProcess) =>
    server.exitCode !== null || server.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((r) => server.once("exit", () => r()));

  it(`loses nothing and leaves nothing behind over ${ROUNDS} rounds`, { timeout: 20 * 60_000 }, async () => {
    const began = Date.now();
    apiPort = await freePort();
    routerPort = await freePort();
    const src = tempDir("kiln-crashloop-src-");
    await cp(join(projectDir, "test", "fixtures", "apps", "procfile-shell"), src, { recursive: true });
    const tarball = () => execFileSync("tar", ["czf", "-", "-C", src, "."]);

    let server = await start();
    expect((await api("POST", "/v1/apps", { name: APP })).status).toBe(201);
    const first = (await (
      await api("POST", `/v1/apps/${APP}/builds`, tarball(), "application/gzip")
    ).json()) as {
      id: string;
    };
    for (;;) {
      const b = (await (await api("GET", `/v1/apps/${APP}/builds/${first.id}`)).json()) as { status: string };
      if (b.status === "succeeded") break;
      if (b.status === "failed") throw new Error(`the first build failed:\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }

    const acked = new Map<string, string>();
    let writes = 0;
    let builds = 0;
    let scales = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      if (round > 1) server = await start();
      let stop = false;
      const writer = (async () => {
        for (let i = 0; !stop; i++) {
          const key = `K${round}_${i}`;
          const value = `v${round}.${i}`;
          const r = await api("PATCH", `/v1/apps/${APP}/config-vars`, { [key]: value }).catch(
            () => undefined,
          );
          writes++;
          if (r?.status === 200) acked.set(key, value);
          await new Promise((r) => setTimeout(r, 150));
        }
      })();
      const other = (async () => {
        if (round % 3 === 0) {
          // A new source now and then: a real build, often cut short by the kill.
          await writeFile(join(src, "round.txt"), `${round}\n`);
          builds++;
          await api("POST", `/v1/apps/${APP}/builds`, tarball(), "application/gzip").catch(() => {});
        } else {
          scales++;
          const quantity = 1 + (round % 3);
          await api("PATCH", `/v1/apps/${APP}/formation`, { updates: [{ type: "web", quantity }] }).catch(
            () => {},
          );
        }
      })();
      await new Promise((r) => setTimeout(r, 500 + Math.random() * 2500));
      server.kill("SIGKILL");
      stop = true;
      await Promise.all([writer, other, stopped(server)]);
    }

    // One more start: it cleans up, requeues, and brings the formation back.
    server = await start();
    const deadline = Date.now() + 180_000;
    let pending: string[] = [];
    for (;;) {
      const list = (await (await api("GET", `/v1/apps/${APP}/builds`)).json()) as {
        id: string;
        status: string;
      }[];
      pending = list.filter((b) => b.status === "pending" || b.status === "building").map((b) => b.id);
      if (pending.length === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const config = (await (await api("GET", `/v1/apps/${APP}/config-vars`)).json()) as Record<string, string>;
    const lost = [...acked].filter(([k, v]) => config[k] !== v).map(([k]) => k);
    const uid = (
      JSON.parse(readFileSync(join(dataDir, "dynos", "uids.json"), "utf8")) as Record<string, number>
    )[APP] as number;
    // A graceful stop, given a minute; if it hangs, kill -9 and the next kiln's clean-up instead.
    server.kill("SIGTERM");
    const shutdownHung = await Promise.race([
      stopped(server).then(() => false),
      new Promise<boolean>((r) => setTimeout(r, 60_000, true)),
    ]);
    if (shutdownHung) {
      server.kill("SIGKILL");
      await stopped(server);
      expect(
        (await kiln(["ps", "--reconcile"], { env: { KILN_DATA_DIR: dataDir, KILN_RUN_DIR: runDir } }))
          .exitCode,
      ).toBe(0);
    }

    const survivors = await processesOf(uid);
    const cgroups = await detectCgroups();
    const instance = instanceId(dataDir);
    const leftCgroups: string[] = [];
    for (const mount of new Set(Object.values(cgroups.controllers).map((h) => h.mount))) {
      for (const e of await readdir(join(mount, "kiln", instance), { withFileTypes: true }).catch(() => []))
        if (e.isDirectory()) leftCgroups.push(join(mount, "kiln", instance, e.name));
    }
    const runDirs = await readdir(join(runDir, instance)).catch(() => [] as string[]);
    const temps = (await readdir(stateDir(dataDir)).catch(() => [] as string[])).filter((f) =>
      f.includes(".tmp-"),
    );
    const db = openStore(join(dataDir, STORE_FILE));
    const integrity = db.pragma("integrity_check", { simple: true });
    db.close();

    const summary = {
      rounds: ROUNDS,
      seconds: Math.round((Date.now() - began) / 1000),
      writes,
      acknowledged: acked.size,
      lost: lost.length,
      builds,
      scales,
      stuckBuilds: pending.length,
      survivors: survivors.length,
      leftCgroups: leftCgroups.length,
      leftRunDirs: runDirs.length,
      tempFiles: temps.length,
      integrity,
      shutdownHung,
    };
    console.log(`crash loop: ${JSON.stringify(summary)}`);
    expect(summary).toMatchObject({
      lost: 0,
      stuckBuilds: 0,
      survivors: 0,
      leftCgroups: 0,
      leftRunDirs: 0,
      tempFiles: 0,
      integrity: "ok",
    });
    expect(acked.size).toBeGreaterThan(ROUNDS);
    // The host still runs dynos for this data directory afterwards (nothing wedged).
    expect((await kiln(["ps", "--json"], { env: { KILN_DATA_DIR: dataDir } })).exitCode).toBe(0);
  });
});
