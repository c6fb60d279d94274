/**
 * Suite 1: crash and fault chaos. See test/helpers/chaos-engine.ts for what one run does.
 *
 *   CHAOS_RUNS          runs (default 60 in npm test; `npm run chaos` runs 1000)
 *   CHAOS_SEED          first seed (default 1; "random" for a fresh one); run i uses seed CHAOS_SEED + i
 *   CHAOS_MAX_FAILURES  stop after this many failed runs (default 3; 0 = run them all, for a rate)
 *
 * Replay one failing run: `CHAOS_SEED=<seed> CHAOS_RUNS=1 npx vitest run test/reliability/chaos.test.ts`
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startMockPolar, type MockPolarServer } from '../../src/mock-server/index.js';
import type { IngestResult, Transport } from '../../src/transport/transport.js';
import { CHAOS_TOKEN, runChaos, UUID_CUSTOMERS, type ChaosRunResult } from '../helpers/chaos-engine.js';
import { envInt } from '../helpers/seeded-random.js';

const RUNS = envInt('CHAOS_RUNS', 60);
const FIRST_SEED = envInt('CHAOS_SEED', 1);
const MAX_FAILURES = envInt('CHAOS_MAX_FAILURES', 3);

let server: MockPolarServer;
beforeAll(async () => {
  // Polar before April 2026 refused a child whose parent it did not hold: the "orphan" poison.
  server = await startMockPolar({ token: CHAOS_TOKEN, orphans: 'rejected' });
  for (const id of UUID_CUSTOMERS) server.addCustomers({ id, external_id: null });
});
afterAll(async () => {
  await server.close();
});

function describeFailure(result: ChaosRunResult): string {
  const shown = result.problems.length > 14 ? [...result.problems.slice(0, 10), '…', ...result.problems.slice(-4)] : result.problems;
  return (
    `chaos seed ${result.seed} broke the promise (replay: CHAOS_SEED=${result.seed} CHAOS_RUNS=1 ` +
    `npx vitest run test/reliability/chaos.test.ts):\n  - ${shown.join('\n  - ')}`
  );
}

describe('crash and fault chaos', () => {
  test(`every accepted event reaches the server exactly once or is dead-lettered with the server's reason, over ${RUNS} seeded runs`, async () => {
    const started = Date.now();
    const totals = { runs: 0, events: 0, valid: 0, poison: 0, lost: 0, duplicated: 0, childBeforeParent: 0, resentBatches: 0 };
    const faults: Record<string, number> = {};
    const failures: ChaosRunResult[] = [];
    for (let i = 0; i < RUNS; i++) {
      const result = await runChaos(server, FIRST_SEED + i);
      totals.runs++;
      totals.events += result.events;
      totals.valid += result.valid;
      totals.poison += result.poison;
      totals.lost += result.lost;
      totals.duplicated += result.duplicated;
      totals.childBeforeParent += result.childBeforeParent;
      totals.resentBatches += result.resentBatches;
      for (const [k, v] of Object.entries(result.faults)) faults[k] = (faults[k] ?? 0) + v;
      if (result.problems.length > 0) {
        failures.push(result);
        console.error(describeFailure(result));
        if (MAX_FAILURES > 0 && failures.length >= MAX_FAILURES) break;
      }
    }
    const injected = Object.values(faults).reduce((a, b) => a + b, 0);
    console.log(
      `[chaos] seeds ${FIRST_SEED}..${FIRST_SEED + totals.runs - 1}: runs ${totals.runs}, events ${totals.events} ` +
        `(valid ${totals.valid}, poison ${totals.poison}), faults injected ${injected}, lost ${totals.lost}, ` +
        `duplicated ${totals.duplicated}, valid children dead-lettered "Parent event not found." ${totals.childBeforeParent}, ` +
        `batches the server deduped ${totals.resentBatches}, ` +
        `failed runs ${failures.length}, ${((Date.now() - started) / 1000).toFixed(1)} s\n` +
        `[chaos] faults: ${Object.entries(faults)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
    );
    expect(failures.map(describeFailure)).toEqual([]);
    expect(totals.lost).toBe(0);
    expect(totals.duplicated).toBe(0);
    expect(totals.runs).toBe(RUNS);
  }, 600_000);

  test('the chaos engine catches a planted bug: a transport that acknowledges a batch before the server answered', async () => {
    // The bug a buffer must never have: it reports success at once and lets the request fail quietly.
    const ackBeforeAnswer = (inner: Transport): Transport => ({
      ingest(events, options): Promise<IngestResult> {
        inner.ingest(events, options).catch(() => undefined);
        return Promise.resolve({ inserted: events.length, duplicates: 0 });
      },
      list: (query, options) => inner.list!(query, options),
    });
    const caught: ChaosRunResult[] = [];
    let lost = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const result = await runChaos(server, 900_000 + seed, { variant: ackBeforeAnswer });
      lost += result.lost;
      if (result.problems.length > 0) caught.push(result);
    }
    console.log(`[chaos] planted bug (ack before answer): ${caught.length}/20 runs failed, ${lost} events lost`);
    expect(caught.length).toBeGreaterThan(0);
    expect(lost).toBeGreaterThan(0);
  }, 120_000);
});
