import { defineConfig } from "vitest/config";

// kiln building and checking itself, and a store made from its seed: the longest Nix builds. scripts/test.mjs (`npm test`) runs
// this project beside `integration`, each one file at a time, so that the two lanes overlap.
const SELFHOST = [
  "test/integration/bootstrap.test.ts",
  "test/integration/flake.test.ts",
  "test/integration/check.test.ts",
  // a second kiln's store made from the seed alone, then a slug substituted from the first's cache
  "test/integration/cache-substitute.test.ts",
];

// Three projects: `unit` (pure logic, small temp dirs) runs its files in parallel; `integration`
// and `selfhost` (test/integration, test/browser, …) share one Nix store and build big
// derivations, so each runs one file at a time with long timeouts. groupOrder runs unit first: a
// logic slip fails in seconds. (One `vitest run` of both later projects runs them one file at a
// time in all: a group shares one worker count. scripts/test.mjs runs them as two processes.)
export default defineConfig({
  test: {
    reporters: ["default", "./test/summaryReporter.ts"],
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          setupFiles: ["./test/tmpCleanup.ts"],
          sequence: { groupOrder: 0 },
          testTimeout: 2 * 60 * 1000,
          hookTimeout: 2 * 60 * 1000,
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: ["test/unit/**", "**/node_modules/**", ...SELFHOST],
          setupFiles: ["./test/tmpCleanup.ts"],
          sequence: { groupOrder: 1 },
          fileParallelism: false,
          testTimeout: 15 * 60 * 1000,
          hookTimeout: 15 * 60 * 1000,
        },
      },
      {
        extends: true,
        test: {
          name: "selfhost",
          include: SELFHOST,
          setupFiles: ["./test/tmpCleanup.ts"],
          sequence: { groupOrder: 1 },
          fileParallelism: false,
          testTimeout: 15 * 60 * 1000,
          hookTimeout: 15 * 60 * 1000,
        },
      },
    ],
  },
});
