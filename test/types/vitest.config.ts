import { defineConfig } from 'vitest/config';

// Type tests: `npm run test:types`. Vitest runs tsc over test/types/*.test-d.ts and reports each
// failed expectTypeOf or unused @ts-expect-error as a failed test; nothing is executed.
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: [],
    typecheck: {
      enabled: true,
      only: true,
      include: ['test/types/**/*.test-d.ts'],
      tsconfig: 'test/types/tsconfig.json',
    },
  },
});
