import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests share one Nix store and build big derivations: one file at a time.
    fileParallelism: false,
    testTimeout: 15 * 60 * 1000,
    hookTimeout: 15 * 60 * 1000,
    reporters: ["default", "./test/summaryReporter.ts"],
  },
});
