// examples/node-cli.mjs runs as users would run it (against the built package) and delivers every
// job tracked while the network was away, in order.
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

test('the CLI example keeps usage while offline and delivers all of it, in order, once back online', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['examples/node-cli.mjs'], { cwd: root, timeout: 30_000 });

  expect(stdout).toContain('waiting while offline: 5');
  expect(stdout).toContain('Polar stored: job.completed#1, job.completed#2, job.completed#3, job.completed#4, job.completed#5\n');
});
