import { describe, expect, it } from "vitest";
import { createBuildQueue, type QueuedJob } from "../../src/builds/queue.js";

/** A queue whose jobs finish when the test says so. */
function harness(opts: { concurrency: number; maxQueued?: number; timeoutMs?: number }) {
  const started: string[] = [];
  const superseded: string[] = [];
  const ends: string[] = [];
  const finish = new Map<string, () => void>();
  const q = createBuildQueue({
    concurrency: opts.concurrency,
    maxQueued: opts.maxQueued ?? 10,
    timeoutMs: opts.timeoutMs ?? 60_000,
    run: (job, signal) =>
      new Promise<void>((resolve) => {
        started.push(job.buildId);
        finish.set(job.buildId, resolve);
        signal.addEventListener("abort", () => {
          ends.push(
            `${job.buildId}:${signal.reason?.name === "TimeoutError" ? "TimeoutError" : signal.reason?.message}`,
          );
          resolve();
        });
      }),
    onSuperseded: (old: QueuedJob, by: QueuedJob) => superseded.push(`${old.buildId}>${by.buildId}`),
  });
  const done = async (id: string) => {
    finish.get(id)?.();
    await new Promise((r) => setImmediate(r));
  };
  return { q, started, superseded, ends, done };
}

describe("the build queue", () => {
  it("runs at most one build per app, FIFO across apps, within the concurrency", async () => {
    const h = harness({ concurrency: 2 });
    h.q.submit({ buildId: "a1", appId: "a" });
    h.q.submit({ buildId: "a2", appId: "a" });
    h.q.submit({ buildId: "b1", appId: "b" });
    h.q.submit({ buildId: "c1", appId: "c" });
    expect(h.started).toEqual(["a1", "b1"]);
    expect(h.q.depth()).toBe(2);
    await h.done("a1");
    expect(h.started).toEqual(["a1", "b1", "a2"]);
    await h.done("b1");
    expect(h.started).toEqual(["a1", "b1", "a2", "c1"]);
  });

  it("lets a newer source supersede a queued older one of the same app", () => {
    const h = harness({ concurrency: 1 });
    h.q.submit({ buildId: "a1", appId: "a" });
    h.q.submit({ buildId: "a2", appId: "a" });
    h.q.submit({ buildId: "a3", appId: "a" });
    expect(h.superseded).toEqual(["a2>a3"]);
    expect(h.q.depth()).toBe(1);
  });

  it("refuses new apps' builds when full, cancels queued and running builds, and times out", async () => {
    const h = harness({ concurrency: 1, maxQueued: 1, timeoutMs: 50 });
    h.q.submit({ buildId: "a1", appId: "a" });
    h.q.submit({ buildId: "b1", appId: "b" });
    expect(h.q.isFull()).toBe(true);
    expect(() => h.q.submit({ buildId: "c1", appId: "c" })).toThrow(/queue is full/);
    expect(h.q.cancel("b1")).toBe(true);
    expect(h.q.cancel("nope")).toBe(false);
    await new Promise((r) => setTimeout(r, 120));
    expect(h.ends).toEqual(["a1:TimeoutError"]);
    h.q.submit({ buildId: "d1", appId: "d" });
    expect(h.q.cancel("d1", "stop")).toBe(true);
    await h.q.idle();
    expect(h.ends).toEqual(["a1:TimeoutError", "d1:stop"]);
  });
});
