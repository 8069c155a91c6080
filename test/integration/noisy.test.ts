/**
 * A noisy tenant against a real `kiln serve`: a dyno printing one endless line (no newline, as fast
 * as the pipe takes it) next to a quiet web app. The server's memory stays bounded, every log line
 * is at most 10,000 bytes, and the quiet app keeps answering (its latency is printed, not asserted).
 */
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectDir } from "../helpers.js";
import { procStatusKb, type ServeProcess, serveProcess, until } from "../serveProcess.js";
import { tempDir } from "../tmp.js";

const fixture = (name: string) => join(projectDir, "test", "fixtures", "apps", name);

describe("a dyno flooding its output", () => {
  let s: ServeProcess;
  beforeAll(async () => {
    s = await serveProcess({ prefix: "kiln-noisy-" });
    await s.start();
  });
  afterAll(async () => {
    await s?.kill();
  });

  const latencies = async (n: number) => {
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      const r = await s.viaRouter("/", "calm.localhost");
      ms.push(performance.now() - t);
      expect(r.status).toBe(200);
    }
    ms.sort((a, b) => a - b);
    return { median: ms[Math.floor(n / 2)], p95: ms[Math.floor(n * 0.95)], max: ms[n - 1] };
  };

  it("keeps the server's memory bounded and cuts lines at 10,000 bytes", async () => {
    expect((await s.k("apps:create", "calm")).exitCode).toBe(0);
    expect((await s.k("deploy", fixture("procfile-shell"), "-a", "calm")).exitCode).toBe(0);
    await until("calm to serve", async () => (await s.viaRouter("/", "calm.localhost")).status === 200);
    const before = await latencies(40);

    const src = tempDir("kiln-noisy-src-");
    cpSync(fixture("procfile-shell"), src, { recursive: true });
    // One line that never ends, as fast as the pipe takes it.
    writeFileSync(join(src, "Procfile"), "worker: tr '\\0' x < /dev/zero\n");
    expect((await s.k("apps:create", "noisy")).exitCode).toBe(0);
    const deployed = await s.k("deploy", src, "-a", "noisy");
    expect(deployed.exitCode, deployed.all).toBe(0);
    const pid = s.proc().pid as number;
    const hwmBefore = procStatusKb(pid, "VmHWM");
    expect((await s.k("ps:scale", "worker=1", "-a", "noisy")).exitCode).toBe(0);
    const logFile = join(s.dataDir, "logs", "noisy.log");
    await until("the noisy worker to be up", async () => {
      const dynos = (await (await s.api("/v1/apps/noisy/dynos")).json()) as { state: string }[];
      return dynos.some((d) => d.state === "up");
    });
    // Let it flood a while, measuring the other app meanwhile.
    const during = await latencies(100);
    await new Promise((r) => setTimeout(r, 10_000));
    const hwm = procStatusKb(pid, "VmHWM");
    const rss = procStatusKb(pid, "VmRSS");
    console.log(
      `noisy dyno: server VmHWM ${hwmBefore} kB before the flood, ${hwm} kB after (VmRSS ${rss} kB); ` +
        `calm app via the router (ms): before ${JSON.stringify(before)}, during ${JSON.stringify(during)}`,
    );
    expect((await s.k("ps:scale", "worker=0", "-a", "noisy")).exitCode).toBe(0);

    // Bounded: the peak is far below what buffering the flood would take (about 1 GiB before).
    expect(hwm).toBeLessThan(400 * 1024);
    const text = [`${logFile}.1`, logFile].map((f) => {
      try {
        return readFileSync(f, "utf8");
      } catch {
        return "";
      }
    });
    const lines = text
      .join("")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { src: string; line: string });
    const flood = lines.filter((l) => l.src === "app[worker.1]");
    expect(flood.length).toBeGreaterThan(10);
    for (const l of lines) expect(Buffer.byteLength(l.line)).toBeLessThanOrEqual(10_000);
    expect(flood.some((l) => l.line === "x".repeat(10_000))).toBe(true);
  });
});
