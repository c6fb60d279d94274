import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { browserEntrySize } from '../bench/browser-entry-size.mjs';

/**
 * Size of the browser entry: what a user's bundler ships for
 * `import { createEventBuffer } from 'polar-event-buffer'` — dist/index.js bundled WITH idb,
 * superstruct and p-retry, minified, gzipped.
 *
 * BUDGET_BYTES is a REGRESSION budget, not the goal: the size reached by the size work on issue 6
 * (27,792 B gzipped at commit 797aff3), rounded up to the next 0.5 KiB; raised to 28.5 KiB on purpose
 * when the speed work (queue reservations, the stored bound, throttled change posts: ~0.7 KB)
 * brought it to 28,598 B; raised to 29 KiB when batch leases (one lease record per flushed batch,
 * read as `sending` by stats() and query(): ~0.8 KB) brought it to 29,359 B; raised to 29.5 KiB when
 * the fixes of that change's review (the matcher and track() see claimed events as `sending`; a
 * keepalive flush leaves a large event for a normal one) brought it to 29,730 B. It stops the bundle from
 * growing unnoticed. Issue 6's target is 10 KiB (TARGET_BYTES, printed alongside); it is not met,
 * and issue 6 stays open until it is. Lower BUDGET_BYTES whenever the bundle shrinks.
 *
 * dist/ comes from `npm run build` (which `npm test` runs first); when it is missing (a bare
 * `npx vitest run` on a fresh clone) the same entry is bundled from src/ and the label says so.
 */
const BUDGET_BYTES = 29.5 * 1024;
/** Issue 6's target for the same measure (not enforced here; see above). */
const TARGET_BYTES = 10 * 1024;

const root = fileURLToPath(new URL('..', import.meta.url));
const distEntry = `${root}dist/index.js`;
const srcEntry = `${root}src/index.ts`;

describe('browser entry size', () => {
  it(`stays within its regression budget of ${BUDGET_BYTES / 1024} KiB minified and gzipped, with idb, superstruct and p-retry bundled (issue 6 target: ${TARGET_BYTES / 1024} KiB, not met yet)`, async () => {
    const entry = existsSync(distEntry) ? distEntry : srcEntry;
    // The same measure as `npm run bench` (one module for both).
    const { outputs, minified, gzipped } = await browserEntrySize(entry);
    expect(outputs).toHaveLength(1);
    const label = entry === distEntry ? 'dist/index.js' : 'src/index.ts (dist/ not built)';
    console.log(
      `[size] ${label} + idb + superstruct + p-retry: ${minified.length} B minified, ${gzipped} B gzipped ` +
        `(${(gzipped / 1024).toFixed(2)} KiB; regression budget ${BUDGET_BYTES / 1024} KiB; ` +
        `issue 6 target ${TARGET_BYTES / 1024} KiB: ${gzipped <= TARGET_BYTES ? 'met' : `not met, ${gzipped - TARGET_BYTES} B over`})`,
    );
    // The bundle really contains the dependencies (a mistaken external would make the figure look small).
    const text = new TextDecoder().decode(minified);
    expect(text).not.toMatch(/from\s*["'](idb|superstruct|p-retry)["']/);
    expect(gzipped).toBeLessThanOrEqual(BUDGET_BYTES);
  });
});
