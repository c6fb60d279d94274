import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// `engines` says Node >= 20, and require(esm) only came unflagged in Node 20.19: the CommonJS build
// must load without it. `--no-experimental-require-module` makes this Node behave like an older 20.
describe('CommonJS build', () => {
  it('loads and flushes through p-retry without require(esm), as on Node 20 before 20.19', () => {
    expect(existsSync('dist/index.cjs'), 'run `npm run build` first').toBe(true);
    const script = `
      require('fake-indexeddb/auto');
      const { createEventBuffer, TransportError } = require('./dist/index.cjs');
      const calls = [];
      const buffer = createEventBuffer({
        autoFlush: false,
        retry: { retries: 1, minTimeout: 1 },
        transport: { async ingest(events) { calls.push(events.length); if (calls.length === 1) throw new TransportError('503 once', { status: 503 }); return { inserted: events.length, duplicates: 0 }; } },
      });
      buffer.track({ name: 'api_call', externalCustomerId: 'u1' })
        .then(() => buffer.flush())
        .then((r) => { console.log(JSON.stringify({ sent: r.sent, calls })); return buffer.close(); });
    `;
    const out = execFileSync(process.execPath, ['--no-experimental-require-module', '-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual({ sent: 1, calls: [1, 1] });
  });
});
