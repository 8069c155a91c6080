/**
 * Test-only (config.testDynoPause, KILN_TEST_DYNO_PAUSE): a dyno's start can be stopped for good at
 * one step, so a test can kill kiln exactly there and check what the next kiln cleans up. The
 * marker file says the step was reached (and which run, which pids).
 */
import { writeFileAtomic } from "../util/fs.js";

export type PauseStep = "spawned" | "cgroups" | "before-go" | "after-go";

export interface TestPause {
  step: PauseStep;
  marker: string;
}

export async function pauseAt(
  pause: TestPause | undefined,
  step: PauseStep,
  info: Record<string, unknown>,
): Promise<void> {
  if (pause?.step !== step) return;
  await writeFileAtomic(pause.marker, `${JSON.stringify({ step, ...info })}\n`);
  // Forever: the test kills this process here.
  await new Promise(() => setInterval(() => {}, 1 << 30));
}
