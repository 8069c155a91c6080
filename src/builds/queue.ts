/**
 * The build queue: bounded concurrency (default: the machine's cores), at most one running build
 * per app, FIFO across apps, and per app only the newest waiting source (a newer one supersedes a
 * queued older one, as Heroku does). Each run gets an AbortSignal that fires on cancel and on the
 * per-build timeout. Past `maxQueued` waiting builds, submit refuses (the API answers 429).
 */
import { KilnError } from "../errors.js";

export interface QueuedJob {
  buildId: string;
  appId: string;
}

export interface BuildQueueOptions {
  concurrency: number;
  maxQueued: number;
  timeoutMs: number;
  run: (job: QueuedJob, signal: AbortSignal) => Promise<void>;
  /** A queued job dropped for a newer one of the same app (mark it cancelled). */
  onSuperseded: (old: QueuedJob, by: QueuedJob) => void;
}

export interface BuildQueue {
  submit(job: QueuedJob): void;
  /** Cancels a queued or running build; false when it is neither. */
  cancel(buildId: string, reason?: string): boolean;
  depth(): number;
  running(): number;
  /** True when a new app's build would be refused (a new source for a queued app still fits). */
  isFull(): boolean;
  /** Server shutdown: forget the waiting (they stay pending and run at the next start), abort the running. */
  stopAll(reason: string): void;
  /** Resolves when nothing is queued or running. */
  idle(): Promise<void>;
}

export function createBuildQueue(opts: BuildQueueOptions): BuildQueue {
  const waiting = new Map<string, QueuedJob>(); // appId → newest waiting job (insertion order = FIFO)
  const active = new Map<string, { job: QueuedJob; abort: AbortController }>(); // appId → running
  let idleWaiters: (() => void)[] = [];

  const pump = () => {
    for (const [appId, job] of waiting) {
      if (active.size >= opts.concurrency) break;
      if (active.has(appId)) continue;
      waiting.delete(appId);
      const abort = new AbortController();
      active.set(appId, { job, abort });
      const signal = AbortSignal.any([abort.signal, AbortSignal.timeout(opts.timeoutMs)]);
      void opts
        .run(job, signal)
        .catch(() => {})
        .finally(() => {
          active.delete(appId);
          pump();
        });
    }
    if (waiting.size === 0 && active.size === 0) {
      for (const w of idleWaiters) w();
      idleWaiters = [];
    }
  };

  return {
    submit(job) {
      const old = waiting.get(job.appId);
      if (!old && waiting.size >= opts.maxQueued) {
        throw new KilnError({
          code: "queue_full",
          message: `the build queue is full (${opts.maxQueued} builds waiting)`,
          hint: "retry in a minute",
        });
      }
      if (old) {
        waiting.delete(job.appId);
        opts.onSuperseded(old, job);
      }
      waiting.set(job.appId, job);
      pump();
    },
    cancel(buildId, reason = "cancelled") {
      for (const [appId, job] of waiting) {
        if (job.buildId === buildId) {
          waiting.delete(appId);
          pump();
          return true;
        }
      }
      for (const { job, abort } of active.values()) {
        if (job.buildId === buildId) {
          abort.abort(new Error(reason));
          return true;
        }
      }
      return false;
    },
    stopAll(reason) {
      waiting.clear();
      for (const { abort } of active.values()) abort.abort(new Error(reason));
      pump();
    },
    depth: () => waiting.size,
    isFull: () => waiting.size >= opts.maxQueued,
    running: () => active.size,
    idle: () =>
      waiting.size === 0 && active.size === 0
        ? Promise.resolve()
        : new Promise<void>((r) => idleWaiters.push(r)),
  };
}
