import { defineConfig } from 'vitest/config';

// The real-browser suite against the built dist/, in the engine PEB_ENGINE names (chromium,
// firefox, webkit; see test/browser/engines.ts). `npm run test:browser` (test/browser/run.mjs)
// runs it once per engine after `npm run build` and prints one line per engine.
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    testTimeout: 90_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Each file launches its own browser: two at a time on two cores.
    maxWorkers: 2,
  },
});
