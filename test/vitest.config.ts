import { defineConfig } from "vitest/config";
import { fileURLToPath } from "node:url";

/**
 * Tests that deploy for real (PM2 daemons, systemd in a container, SSH, servers on ports) or
 * install packages (npm ci, npm install of the packed tarball) are named *.e2e.test.ts, wherever
 * they live; everything under test/e2e/ counts as one too. `npm test` runs both projects;
 * `npm run test:unit` (`--project unit`) leaves the e2e one out.
 */
const E2E = ["test/e2e/**/*.test.ts", "test/**/*.e2e.test.ts"];

export default defineConfig({
  root: fileURLToPath(new URL("..", import.meta.url)),
  test: {
    setupFiles: ["test/setup-fast-check.ts"],
    // Rebuilds dist/ when src/ or templates/ changed since it was built.
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // End-to-end files start real servers; two workers match the machine's two cores.
    maxWorkers: 2,
    reporters: ["default"],
    projects: [
      { extends: true, test: { name: "unit", include: ["test/**/*.test.ts"], exclude: E2E } },
      { extends: true, test: { name: "e2e", include: E2E } },
    ],
  },
});
