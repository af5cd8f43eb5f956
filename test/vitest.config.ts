import { defineConfig } from "vitest/config";
import { fileURLToPath } from "node:url";

export default defineConfig({
  root: fileURLToPath(new URL("..", import.meta.url)),
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/setup-fast-check.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // End-to-end files start real servers; two workers match the machine's two cores.
    maxWorkers: 2,
    reporters: ["default"],
  },
});
