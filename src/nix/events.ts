/**
 * Nix's `--log-format internal-json` protocol: every stderr line that starts with `@nix ` carries one
 * JSON event. This module parses them (zod) and folds them into a small progress state that the CLI
 * renders as one line, and that the driver uses to recover each failed build's log.
 */
import { z } from "zod";

/** Activity types (nix/src/libutil/logging.hh). */
export const ActivityType = {
  Unknown: 0,
  CopyPath: 100,
  FileTransfer: 101,
  Realise: 102,
  CopyPaths: 103,
  Builds: 104,
  Build: 105,
  OptimiseStore: 106,
  VerifyPaths: 107,
  Substitute: 108,
  QueryPathInfo: 109,
  PostBuildHook: 110,
  BuildWaiting: 111,
} as const;

/** Result types (nix/src/libutil/logging.hh). */
export const ResultType = {
  FileLinked: 100,
  BuildLogLine: 101,
  UntrustedPath: 102,
  CorruptedPath: 103,
  SetPhase: 104,
  Progress: 105,
  SetExpected: 106,
  PostBuildLogLine: 107,
} as const;

const field = z.union([z.string(), z.number()]);

export const nixEventSchema = z.discriminatedUnion("action", [
  z.object({
    action: z.literal("start"),
    id: z.number(),
    level: z.number().optional(),
    type: z.number(),
    text: z.string().default(""),
    parent: z.number().optional(),
    fields: z.array(field).default([]),
  }),
  z.object({ action: z.literal("stop"), id: z.number() }),
  z.object({
    action: z.literal("result"),
    id: z.number(),
    type: z.number(),
    fields: z.array(field).default([]),
  }),
  z.object({
    action: z.literal("msg"),
    level: z.number(),
    msg: z.string(),
    raw_msg: z.string().optional(),
  }),
  z.object({ action: z.literal("setPhase"), phase: z.string() }),
]);

export type NixEvent = z.infer<typeof nixEventSchema>;

/** Parses one stderr line; returns undefined for lines that are not internal-json events. */
export function parseNixEventLine(line: string): NixEvent | undefined {
  if (!line.startsWith("@nix ")) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(line.slice(5));
  } catch {
    return undefined;
  }
  const r = nixEventSchema.safeParse(json);
  return r.success ? r.data : undefined;
}

interface ActivityState {
  type: number;
  text: string;
  drvPath?: string;
  done: number;
  expected: number;
  running: number;
  failed: number;
  phase?: string;
  log: string[];
}

export interface ProgressSnapshot {
  /** Derivations built so far and how many this invocation expects to build. */
  buildsDone: number;
  buildsExpected: number;
  buildsRunning: number;
  buildsFailed: number;
  /** What is happening now: the newest running build and its phase or latest log line. */
  current: string | undefined;
  /** Bytes fetched so far (file transfers and copied paths), and the expected total if known. */
  bytesDone: number;
  bytesExpected: number;
}

const LOG_TAIL_LINES = 60;

/** Folds events into progress; keeps the tail of every build's log so failures can show it. */
export class NixProgress {
  private readonly activities = new Map<number, ActivityState>();
  private readonly finishedLogs = new Map<string, string[]>();
  private readonly buildOrder: number[] = [];
  /** The Builds activity's last progress report; kept after it stops so the final state is known. */
  private builds = { done: -1, expected: 0, running: 0, failed: 0 };
  private buildsStarted = 0;
  private buildsStopped = 0;
  readonly messages: string[] = [];

  apply(ev: NixEvent): void {
    switch (ev.action) {
      case "start": {
        const st: ActivityState = {
          type: ev.type,
          text: ev.text,
          done: 0,
          expected: 0,
          running: 0,
          failed: 0,
          log: [],
        };
        if (ev.type === ActivityType.Build) {
          const drv = ev.fields[0];
          if (typeof drv === "string") st.drvPath = drv;
          this.buildsStarted++;
          this.buildOrder.push(ev.id);
        }
        this.activities.set(ev.id, st);
        break;
      }
      case "stop": {
        const st = this.activities.get(ev.id);
        if (st?.type === ActivityType.Builds) this.builds.running = 0;
        if (st?.type === ActivityType.Build) {
          this.buildsStopped++;
          if (st.drvPath) this.finishedLogs.set(st.drvPath, st.log);
          const i = this.buildOrder.indexOf(ev.id);
          if (i !== -1) this.buildOrder.splice(i, 1);
        }
        this.activities.delete(ev.id);
        break;
      }
      case "result": {
        const st = this.activities.get(ev.id);
        if (!st) break;
        if (ev.type === ResultType.BuildLogLine || ev.type === ResultType.PostBuildLogLine) {
          st.log.push(String(ev.fields[0] ?? ""));
          if (st.log.length > LOG_TAIL_LINES) st.log.shift();
        } else if (ev.type === ResultType.SetPhase) {
          st.phase = String(ev.fields[0] ?? "");
        } else if (ev.type === ResultType.Progress) {
          const [done, expected, running, failed] = ev.fields.map(Number);
          st.done = done ?? 0;
          st.expected = expected ?? 0;
          st.running = running ?? 0;
          st.failed = failed ?? 0;
          if (st.type === ActivityType.Builds)
            this.builds = { done: st.done, expected: st.expected, running: st.running, failed: st.failed };
        } else if (ev.type === ResultType.SetExpected) {
          // fields: [activity type, expected count]; for Builds this is the number of derivations.
          if (Number(ev.fields[0]) === ActivityType.Build) st.expected = Number(ev.fields[1] ?? 0);
        }
        break;
      }
      case "msg":
        if (ev.level <= 1) this.messages.push(ev.msg);
        break;
      default:
        break;
    }
  }

  snapshot(): ProgressSnapshot {
    let {
      expected: buildsExpected,
      done: buildsDone,
      running: buildsRunning,
      failed: buildsFailed,
    } = this.builds;
    let bytesDone = 0;
    let bytesExpected = 0;
    for (const st of this.activities.values()) {
      if (st.type === ActivityType.FileTransfer || st.type === ActivityType.CopyPath) {
        bytesDone += st.done;
        bytesExpected += st.expected;
      }
    }
    if (buildsDone < 0) buildsDone = this.buildsStopped;
    buildsExpected = Math.max(buildsExpected, this.buildsStarted, buildsDone);
    const newest = this.buildOrder.at(-1);
    const cur = newest === undefined ? undefined : this.activities.get(newest);
    let current: string | undefined;
    if (cur?.drvPath) {
      const name = derivationName(cur.drvPath);
      const detail = cur.phase ?? cur.log.at(-1);
      current = detail ? `${name}: ${detail}` : name;
    }
    return {
      buildsDone,
      buildsExpected,
      buildsRunning: Math.max(buildsRunning, this.buildOrder.length),
      buildsFailed,
      current,
      bytesDone,
      bytesExpected,
    };
  }

  /** The derivation a (running) build activity is building. */
  drvPathOf(id: number): string | undefined {
    return this.activities.get(id)?.drvPath;
  }

  /** The last log lines of a derivation's build (running or finished). */
  logTail(drvPath: string): string[] {
    for (const st of this.activities.values()) if (st.drvPath === drvPath) return [...st.log];
    return [...(this.finishedLogs.get(drvPath) ?? [])];
  }
}

/** `/nix/store/abc…-stack-run.drv` → `stack-run`. */
export function derivationName(drvPath: string): string {
  const base = drvPath.slice(drvPath.lastIndexOf("/") + 1).replace(/\.drv$/, "");
  return base.replace(/^[0-9a-z]{32}-/, "");
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** One compact line: `[1/3 built, 1 running] stack-build: copying gcc-12 · 12 MiB fetched`. */
export function formatProgress(p: ProgressSnapshot): string {
  const parts = [`${p.buildsDone}/${p.buildsExpected} built`];
  if (p.buildsRunning > 0) parts.push(`${p.buildsRunning} running`);
  if (p.buildsFailed > 0) parts.push(`${p.buildsFailed} failed`);
  let line = `[${parts.join(", ")}]`;
  if (p.current) line += ` ${p.current}`;
  if (p.bytesDone > 0) {
    line += ` · ${formatBytes(p.bytesDone)}${p.bytesExpected > p.bytesDone ? ` of ${formatBytes(p.bytesExpected)}` : ""} fetched`;
  }
  return line;
}
