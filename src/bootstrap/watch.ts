/**
 * The bootstrap's silence bound: every stage says what it is waiting for, and each sign of progress
 * (a build log line, a Nix event, a dyno changing state, bytes uploaded) restarts the clock. A stage
 * silent for longer than the bound aborts `signal` with an error naming the stage and the wait, so
 * every wait in the bootstrap (Nix, the platform, HTTP calls) ends instead of hanging.
 */
import { KilnError } from "../errors.js";

export const BOOTSTRAP_STAGES = [
  "stage0",
  "stage1",
  "platform",
  "upload",
  "stage2",
  "stage3",
  "compare",
] as const;
export type BootstrapStage = "preflight" | (typeof BOOTSTRAP_STAGES)[number];

export interface StageWatch {
  /** Aborted when a stage stayed silent too long (its reason is the KilnError to report). */
  signal: AbortSignal;
  stage: BootstrapStage;
  waitingFor: string;
  /** A new stage, or a new wait within one: the clock restarts. */
  enter(stage: BootstrapStage, waitingFor: string): void;
  /** A sign of progress: the clock restarts. */
  progress(): void;
  stop(): void;
}

export function createStageWatch(silenceMs: number): StageWatch {
  const ctl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    if (timer) clearTimeout(timer);
    if (ctl.signal.aborted) return;
    timer = setTimeout(() => {
      ctl.abort(
        new KilnError({
          code: "bootstrap_stalled",
          message: `${w.stage} showed no progress for ${formatSeconds(silenceMs)} while waiting for ${w.waitingFor}`,
          hint: "raise the bound with KILN_BOOTSTRAP_SILENCE_SECONDS if the machine is just slow; the report names the stage",
        }),
      );
    }, silenceMs);
    // The bound must not be what keeps kiln alive once everything else has ended.
    timer.unref();
  };
  const w: StageWatch = {
    signal: ctl.signal,
    stage: "preflight",
    waitingFor: "the checks before the first stage",
    enter(stage, waitingFor) {
      w.stage = stage;
      w.waitingFor = waitingFor;
      arm();
    },
    progress: arm,
    stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
  return w;
}

function formatSeconds(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 120 && s % 60 === 0 ? `${s / 60} min` : `${s} s`;
}
