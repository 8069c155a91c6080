import { defineConfig } from "vitest/config";

// Two projects: `unit` (pure logic, small temp dirs) runs its files in parallel; everything else
// (test/integration, test/browser, …) shares one Nix store and builds big derivations, so it runs
// one file at a time with long timeouts. groupOrder runs unit first: a logic slip fails in seconds.
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
          exclude: ["test/unit/**", "**/node_modules/**"],
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
