/**
 * Build logs are bounded (review s3, M2): a build that prints without end filled the disk, and
 * every viewer read the whole file into memory. Real files in a temp dir; the control is the same
 * writer with no bound, which keeps all a build prints.
 */
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createBuildLogs, TRUNCATED_MARKER } from "../../src/builds/buildLog.js";

const CAP = 64 * 1024;
/** A line of build output: 100 bytes with its newline, a multi-byte character in it. */
const line = (i: number) => `${String(i).padStart(8, "0")} é ${"x".repeat(87)}`;
/** A build printing `n` lines, then kiln's closing step line; followed live by `onText`. */
async function noisyBuild(maxBytes: number, n: number) {
  const logs = createBuildLogs(mkdtempSync(join(tmpdir(), "kiln-buildlog-")), { maxBytes });
  const out = logs.open("b1");
  let live = "";
  const following = logs.follow("b1", (t) => (live += t), new AbortController().signal);
  for (let i = 0; i < n; i++) out.write(line(i));
  out.write("-----> Build failed: the build script exited 1");
  out.end();
  await following;
  return { logs, live, file: logs.path("b1") };
}

describe("build logs", () => {
  it("control: with no bound, the file holds all 10 MB a build prints", async () => {
    const { file, live } = await noisyBuild(Number.POSITIVE_INFINITY, 100_000);
    expect(statSync(file).size).toBeGreaterThan(10_000_000);
    expect(live).not.toContain(TRUNCATED_MARKER);
  });

  it("past the bound: one 'log truncated' line, later lines dropped (kiln's step lines kept), the file ≤ bound + marker, and the follower gets the marker", async () => {
    const { file, live } = await noisyBuild(CAP, 100_000);
    const text = readFileSync(file, "utf8");
    const marker = text.split("\n").find((l) => l.startsWith(TRUNCATED_MARKER)) ?? "";
    expect(marker).toContain("KILN_MAX_BUILD_LOG_BYTES");
    expect(statSync(file).size).toBeLessThanOrEqual(CAP + Buffer.byteLength(marker) + 1);
    expect(text.split(TRUNCATED_MARKER)).toHaveLength(2);
    expect(text).toContain(line(0));
    expect(text).not.toContain(line(99_999));
    expect(text.endsWith("-----> Build failed: the build script exited 1\n")).toBe(true);
    // Live, the follower saw exactly what the file keeps.
    expect(live).toBe(text);
  });

  it("a later viewer gets the file in chunks, UTF-8 intact, or only its tail from a line start", async () => {
    const { logs, file } = await noisyBuild(Number.POSITIVE_INFINITY, 5_000);
    const whole = readFileSync(file, "utf8");
    const chunks: string[] = [];
    await logs.follow("b1", (t) => chunks.push(t), new AbortController().signal);
    expect(chunks.join("")).toBe(whole);
    expect(chunks.length).toBeGreaterThan(5);
    expect(Math.max(...chunks.map((c) => Buffer.byteLength(c)))).toBeLessThanOrEqual(64 * 1024);

    let tailed = "";
    await logs.follow("b1", (t) => (tailed += t), new AbortController().signal, { tailBytes: 1000 });
    expect(tailed.length).toBeLessThanOrEqual(1000);
    expect(whole.endsWith(tailed)).toBe(true);
    expect(tailed.startsWith(line(4_991))).toBe(true);

    const t = await logs.tail("b1", 1000);
    expect(t).toEqual({ text: tailed, cut: true });
    expect(await logs.tail("b1", 10_000_000)).toEqual({ text: whole, cut: false });
    expect(await logs.tail("none", 1000)).toEqual({ text: "", cut: false });
  });
});
