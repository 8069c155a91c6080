/**
 * Dyno sizes, after Heroku's: each is a memory quota, a process limit, a CPU quota, a /tmp size and
 * an open-files limit. Core dumps are always off. /tmp is a tmpfs, whose pages count against the
 * memory quota, so it is sized at half of it: a full /tmp leaves the app room to run.
 */
import { KilnError } from "../errors.js";

export interface DynoSize {
  name: string;
  memoryBytes: number;
  /** Processes and threads in the dyno (cgroup pids.max). */
  pids: number;
  /** CPU time per wall-clock second, in CPUs (0.5 = half of one core). */
  cpus: number;
  tmpBytes: number;
  openFiles: number;
}

const MiB = 1024 * 1024;

export const DYNO_SIZES: Record<string, DynoSize> = {
  basic: {
    name: "basic",
    memoryBytes: 512 * MiB,
    pids: 256,
    cpus: 0.5,
    tmpBytes: 128 * MiB,
    openFiles: 4096,
  },
  "standard-1x": {
    name: "standard-1x",
    memoryBytes: 512 * MiB,
    pids: 256,
    cpus: 1,
    tmpBytes: 256 * MiB,
    openFiles: 10000,
  },
  "standard-2x": {
    name: "standard-2x",
    memoryBytes: 1024 * MiB,
    pids: 512,
    cpus: 2,
    tmpBytes: 512 * MiB,
    openFiles: 10000,
  },
  "performance-m": {
    name: "performance-m",
    memoryBytes: 2560 * MiB,
    pids: 16384,
    cpus: 2,
    tmpBytes: 1280 * MiB,
    openFiles: 65536,
  },
};

export const DEFAULT_DYNO_SIZE = "standard-1x";

export function dynoSize(name: string): DynoSize {
  const size = DYNO_SIZES[name];
  if (!size) {
    throw new KilnError({
      code: "invalid_dyno_size",
      message: `unknown dyno size "${name}"`,
      hint: `use one of: ${Object.keys(DYNO_SIZES).join(", ")}`,
    });
  }
  return size;
}
