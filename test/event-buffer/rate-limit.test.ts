import { describe, expect, it } from 'vitest';
import { freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { bufferFactory, input, JumpClock } from './support.js';

const startPolar = useMockPolar();
const make = bufferFactory();

describe("the server's rate limit", () => {
  it('drains a backlog in full batches and waits out each 429 for its Retry-After, losing nothing', async () => {
    // Polar's limiter answers 429 with an empty body and `Retry-After: 60` (its whole window). The
    // fault script puts that answer on the third request, so the test does not race a real window;
    // the buffer waits in the JumpClock's virtual time, which records how long it chose to wait.
    const limited = { status: 429, retryAfter: 60, body: '', headers: { 'Content-Type': '' } };
    const polar = await startPolar({ faults: [{}, {}, limited] });
    const clock = new JumpClock(Date.now(), 90_000);
    const buffer = make(polar, {
      indexedDB: freshIndexedDB(),
      clock,
      // The lease is renewed every third of it: beyond the clock's jumps, so it never fires here.
      leaseDuration: 300_000,
      batchSize: 1000,
      maxBatchBytes: 1_000_000,
      retry: { retries: 3, minTimeout: 10, maxTimeout: 120_000, randomize: false },
    });
    const tracked = await buffer.trackMany(Array.from({ length: 2500 }, (_, i) => input(i)));
    expect(await buffer.flush()).toMatchObject({ sent: 2500, remaining: 0, requests: 4 });
    const ingests = polar.ingestRequests();
    expect(ingests.map((r) => r.status)).toEqual([200, 200, 429, 200]);
    // Full batches: 1000 + 1000 + 500, never a small request; the refused batch came back whole.
    const sizes = ingests.map((r) => (r.body as { events: unknown[] }).events.length);
    expect(sizes).toEqual([1000, 1000, 500, 500]);
    // The one long wait is the Retry-After, in full.
    expect(clock.waits.filter((ms) => ms >= 1000)).toEqual([60_000]);
    expect(polar.storedExternalIds().sort()).toEqual(tracked.map((e) => e.externalId).sort());
  });
});
