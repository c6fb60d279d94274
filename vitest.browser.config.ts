import { defineConfig } from 'vitest/config';

// The real-browser suite (Debian's Chromium via playwright-core) against the built dist/.
// Run it with `npm run test:browser` (which checks for Chromium first) after `npm run build`.
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Each file launches its own Chromium: two at a time on two cores.
    maxWorkers: 2,
  },
});
