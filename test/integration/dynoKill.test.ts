/**
 * kill -9 of kiln at each step of a dyno's start (issue 19): a real `kiln run` child, stopped at
 * the step by the test-only KILN_TEST_DYNO_PAUSE switch, then SIGKILLed. After the next kiln
 * starts, nothing of that dyno may be alive, no cgroup or run directory of it may be left, and a
 * decoy process that the dead dyno's record names (as a reused pid would be) must survive.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../src/builds/build.js";
import { dynoSize } from "../../src/config/dynoSizes.js";
import { createDynoCgroup, detectCgroups } from "../../src/dyno/cgroups.js";
import { instanceId } from "../../src/dyno/instance.js";
import { processStartTime, sameProcess } from "../../src/dyno/procfs.js";
import { reconcileDynos } from "../../src/dyno/reconcile.js";
import { readDynoRecords, stateDir } from "../../src/dyno/state.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { type RunnableSlug, resolveSlug } from "../../src/slug/runnable.js";
import { exists } from "../../src/util/fs.js";
import { findDirs, processesOf } from "../dynoHelpers.js";
import { kiln, kilnBin, projectDir, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const STEPS = ["spawned", "cgroups", "before-go", "after-go"] as const;

describe("kill -9 of kiln while a dyno starts", () => {
  const dataDir = tempDir("kiln-dynokill-");
  chmodSync(dataDir, 0o711);
  const t = testContext({ dataDir });
  const env = { KILN_DATA_DIR: dataDir, KILN_RUN_DIR: t.config.runDir };
  let slug: RunnableSlug;
  const decoys: ChildProcess[] = [];

  beforeAll(async () => {
    await ensureSeed(t);
    const r = await buildApp(t, { appDir: join(projectDir, "test", "fixtures", "apps", "procfile-shell") });
    slug = await resolveSlug({ nix: t.nix, dataDir }, r.manifestPath);
  });

  afterAll(() => {
    for (const d of decoys) d.kill("SIGKILL");
  });

  it.each(STEPS)("at %s: the next kiln leaves nothing of the dyno and kills nothing else", async (step) => {
    const marker = join(dataDir, "test-pause.json");
    await writeFile(marker, "").catch(() => {});
    const child = spawn("node", [kilnBin, "run", slug.app, "-q"], {
      env: { ...process.env, ...env, KILN_TEST_DYNO_PAUSE: step },
      stdio: "ignore",
    });
    const gone = new Promise((r) => child.once("exit", r));
    const paused = await until(`the start to pause at ${step}`, async () => {
      const text = await readFile(marker, "utf8").catch(() => "");
      try {
        return JSON.parse(text) as { runId: string; launcherPid?: number; initPid?: number };
      } catch {
        return undefined; // not written yet (or half of it)
      }
    });
    const rec = (await readDynoRecords(dataDir)).find((r) => r.supervisor.pid === child.pid);
    expect(rec).toBeDefined();
    if (!rec) return;
    const pids = [paused.launcherPid, paused.initPid].filter((p): p is number => p !== undefined);
    const starts = await Promise.all(pids.map(async (p) => [p, await processStartTime(p)] as const));

    // A process outside kiln that the dead dyno's record names, as a reused pid would be.
    const decoy = spawn("sleep", ["1000"], { stdio: "ignore" });
    decoys.push(decoy);
    const decoyPid = decoy.pid as number;
    const decoyStart = await processStartTime(decoyPid);
    child.kill("SIGKILL");
    await gone;
    const file = join(stateDir(dataDir), `${rec.id}.json`);
    const onDisk = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    await writeFile(file, JSON.stringify({ ...onDisk, pid: decoyPid, initPid: decoyPid }));

    // The next start of kiln (a one-off dyno of the same app).
    const next = await kiln(["run", slug.app, "--", "true"], { env });
    expect(next.exitCode).toBe(0);

    const left = await until(
      "the dyno's processes to be gone",
      async () => ((await processesOf(rec.uid)).length === 0 ? [] : undefined),
      5000,
    ).catch(async () => processesOf(rec.uid));
    const detail = await Promise.all(
      left.map((p) => readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "?")),
    );
    expect({ left, detail }).toEqual({ left: [], detail: [] });
    for (const [p, s] of starts)
      expect({ pid: p, alive: await sameProcess(p, s) }).toEqual({ pid: p, alive: false });

    const cgroups = await detectCgroups();
    const mounts = [...new Set(Object.values(cgroups.controllers).map((h) => h.mount))];
    const leftCgroups = (
      await Promise.all(mounts.map((m) => findDirs(join(m, "kiln"), paused.runId)))
    ).flat();
    expect(leftCgroups).toEqual([]);
    expect(await findDirs(t.config.runDir, paused.runId)).toEqual([]);
    expect(await exists(file)).toBe(false);

    expect(await sameProcess(decoyPid, decoyStart)).toBe(true);
    decoy.kill("SIGKILL");
  });

  it("judges only this kiln's own cgroups: another instance's dyno and a build live on", async () => {
    const cgroups = await detectCgroups();
    const size = dynoSize("basic");
    const other = instanceId(tempDir("kiln-other-"));
    const mine = instanceId(dataDir);
    const theirs = await createDynoCgroup(cgroups, `${other}/web.1-theirs`, size);
    const build = await createDynoCgroup(cgroups, `b-${process.pid}`, size, { parent: "kiln-builds" });
    const orphan = await createDynoCgroup(cgroups, `${mine}/web.1-orphan`, size);
    const sleeper = async (cg: { addProcess(pid: number): Promise<void> }) => {
      const p = spawn("sleep", ["1000"], { stdio: "ignore" });
      decoys.push(p);
      await cg.addProcess(p.pid as number);
      return [p.pid as number, await processStartTime(p.pid as number)] as const;
    };
    const [theirsPid, theirsStart] = await sleeper(theirs);
    const [buildPid, buildStart] = await sleeper(build);
    const [orphanPid, orphanStart] = await sleeper(orphan);
    const report = await reconcileDynos({ dataDir, runDir: t.config.runDir, cgroups });
    expect(report.errors).toEqual([]);
    expect(await sameProcess(theirsPid, theirsStart)).toBe(true);
    expect(await sameProcess(buildPid, buildStart)).toBe(true);
    // In this kiln's tree with no record naming it: nobody owns it.
    expect(await sameProcess(orphanPid, orphanStart)).toBe(false);
    for (const d of orphan.dirs) expect(await exists(d)).toBe(false);
    for (const d of [...theirs.dirs, ...build.dirs]) expect(await exists(d)).toBe(true);
    await theirs.remove();
    await build.remove();
  });
});
