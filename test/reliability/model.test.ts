/**
 * Model-based test of the event's life (issue 17): random command sequences (fast-check
 * `fc.commands`) run against real buffers (two devices, each its own fake-indexeddb; more tabs on
 * one database; crashes and page exits) and the real mock Polar over HTTP, and against the small
 * reference model in test/helpers/model/reference.ts. After every step: Polar holds exactly the
 * events the model says (never one twice), stats() and the dead letters equal the model's, track()
 * is refused exactly when the model's queue is full, and meterUsage (a count and a sum meter) equals
 * the model's; after a final drain nothing accepted is lost.
 *
 *   MODEL_RUNS      runs (default 30)          MODEL_COMMANDS  commands per run at most (default 40)
 *   MODEL_SEED      fast-check seed (default 17; "random" for a fresh one)
 *   MODEL_PATH      replay one counterexample (with its seed), as printed on failure; a shrunk
 *                   one also needs MODEL_REPLAY (the commands' replayPath, printed with them)
 *   MODEL_SHRINK=1  shrink a failure to a minimal sequence (slow: each try is a real run)
 *
 * `npm run test:model` runs a larger campaign.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { startMockPolar, type MockPolarServer } from '../../src/mock-server/index.js';
import { commandsArb, drain } from '../helpers/model/commands.js';
import { CUSTOMERS, ReferenceModel } from '../helpers/model/reference.js';
import { MODEL_TOKEN, pageEvents, RealSystem } from '../helpers/model/system.js';
import { envInt } from '../helpers/seeded-random.js';

const RUNS = envInt('MODEL_RUNS', 30);
const COMMANDS = envInt('MODEL_COMMANDS', 40);
const SEED = envInt('MODEL_SEED', 17);
const PATH = process.env['MODEL_PATH'] || undefined;
const SHRINK = process.env['MODEL_SHRINK'] === '1';
const REPLAY = process.env['MODEL_REPLAY'] || undefined;
/** A whole minute (virtual time): every run starts here. */
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);

let server: MockPolarServer;
let restoreGlobals: () => void;
beforeAll(async () => {
  // Polar before April 2026 refused a child whose parent it did not hold: the "orphan" bad event.
  server = await startMockPolar({ token: MODEL_TOKEN, orphans: 'rejected' });
  // Polar refuses a customer_id it does not know (the external ids need no customer).
  server.addCustomers({ id: CUSTOMERS[2].customerId.toLowerCase(), external_id: null });
  // One virtual clock for the buffers and Polar (its listing lag and "not in the future" rule);
  // timers stay real, so requests, IndexedDB and fast-check run as usual.
  vi.useFakeTimers({ toFake: ['Date'], now: T0 });
  restoreGlobals = pageEvents.install();
});
afterAll(async () => {
  restoreGlobals?.();
  vi.useRealTimers();
  await server?.close();
});

describe('the life of an event, against a reference model', () => {
  test(`${RUNS} seeded runs of up to ${COMMANDS} commands keep every invariant (seed ${SEED})`, async () => {
    const started = performance.now();
    let runs = 0;
    let steps = 0;
    let pageExitStale = 0;
    let pageExitEvents = 0;
    const kinds = new Map<string, number>();
    const config = fc.record({ maxQueueSize: fc.integer({ min: 3, max: 8 }), batchSize: fc.integer({ min: 1, max: 3 }) });
    const property = fc.asyncProperty(config, commandsArb(COMMANDS, REPLAY), async ({ maxQueueSize, batchSize }, commands) => {
      runs++;
      server.reset();
      server.setListingLag(0);
      vi.setSystemTime(T0);
      const model = new ReferenceModel(maxQueueSize, batchSize, 2, T0);
      const real = new RealSystem(server, model, runs, 2);
      try {
        await fc.asyncModelRun(() => ({ model, real }), commands);
        if (process.env['MODEL_DEBUG']) console.log(`run ${runs}: ${String(commands)}`);
        await drain(model, real);
      } finally {
        steps += real.steps;
        pageExitStale += real.pageExitStale;
        pageExitEvents += real.pageExitEvents;
        for (const [k, n] of real.kinds) kinds.set(k, (kinds.get(k) ?? 0) + n);
        for (const tabs of real.tabs) for (const tab of tabs) await tab.buffer.close().catch(() => undefined);
      }
    });
    const details = await fc.check(property, { seed: SEED, numRuns: RUNS, endOnFailure: !SHRINK, ...(PATH ? { path: PATH } : {}) });
    console.log(
      `[model] seed ${SEED}: ${runs} runs, ${steps} commands, ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
        `page-exit sends carried ${pageExitEvents} events, ${pageExitStale} of them already delivered\n` +
        `[model] steps: ${[...kinds]
          .sort((a, b) => b[1] - a[1])
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}`,
    );
    if (details.failed) {
      const commands = details.counterexample ? String(details.counterexample[1]) : '?';
      const replayPath = /replayPath="([^"]*)"/.exec(commands)?.[1];
      const replay =
        `MODEL_SEED=${details.seed} MODEL_PATH=${details.counterexamplePath}${replayPath && SHRINK ? ` MODEL_REPLAY='${replayPath}'` : ''} ` +
        'npx vitest run test/reliability/model.test.ts';
      const error = details.errorInstance as Error | undefined;
      throw new Error(
        `the model found a broken promise at seed ${details.seed}, path ${details.counterexamplePath} (replay: ${replay}; add MODEL_SHRINK=1 to shrink)\n` +
          `commands: ${commands}\n${error?.message ?? String(details.errorInstance)}`,
      );
    }
    expect(runs).toBeGreaterThan(0);
  }, 900_000);
});
