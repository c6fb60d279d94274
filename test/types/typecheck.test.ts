// Runs the compile-time checks inside `npm test`: the type tests (test/types/*.test-d.ts, where a
// failed expectTypeOf or an unused @ts-expect-error is a compile error) and the TypeScript
// examples (React hook, service worker, page) against the built declarations in dist/.
// `npm run test:types` shows the type tests one by one with vitest's typecheck mode.
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

async function typecheck(project: string): Promise<string> {
  try {
    await run(process.execPath, [tsc, '-p', join(root, project), '--pretty', 'false'], { cwd: root });
    return '';
  } catch (error) {
    const e = error as { stdout?: string; message: string };
    return e.stdout || e.message;
  }
}

describe('compile-time checks', () => {
  // One test starts all three compilers so they share the two cores instead of queueing.
  const results = Promise.all([typecheck('test/types/tsconfig.json'), typecheck('examples/tsconfig.json'), typecheck('examples/service-worker/tsconfig.json')]);
  results.catch(() => {});

  test('the type tests compile (schemas type track() metadata)', async () => {
    expect((await results)[0]).toBe('');
  });

  test('the React and page examples type-check against dist/', async () => {
    expect((await results)[1]).toBe('');
  });

  test('the service worker example type-checks against dist/ with the webworker lib', async () => {
    expect((await results)[2]).toBe('');
  });
});
