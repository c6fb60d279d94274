import { describe, expect, it } from 'vitest';
import { freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { bufferFactory, input } from './support.js';

const startPolar = useMockPolar();
const make = bufferFactory();

describe("the server's rate limit", () => {
  it('drains a backlog in full batches and waits out each 429 for its Retry-After, losing nothing', async () => {
    // Polar allows 500 requests a minute per token; here 2 per 4 s (wide enough for a loaded
    // machine to send two 1000-event batches inside it), so the third batch must wait.
    const polar = await startPolar({ rateLimit: { requests: 2, window: 4000 } });
    const buffer = make(polar, {
      indexedDB: freshIndexedDB(),
      batchSize: 1000,
      maxBatchBytes: 1_000_000,
      retry: { retries: 3, minTimeout: 10, maxTimeout: 5000, randomize: false },
    });
    const tracked = await buffer.trackMany(Array.from({ length: 2500 }, (_, i) => input(i)));
    expect(await buffer.flush()).toMatchObject({ sent: 2500, remaining: 0 });
    const ingests = polar.ingestRequests();
    // Full batches: 1000 + 1000 + 500, never a small request.
    expect(ingests.filter((r) => r.status === 200).map((r) => (r.body as { events: unknown[] }).events.length)).toEqual([1000, 1000, 500]);
    // After each 429 the next request came no sooner than the Retry-After it carried (whole seconds, at least 1).
    const limited = ingests.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    for (const r of limited) {
      const next = ingests.find((n) => n.seq > r.seq)!;
      expect(next.at.getTime() - r.at.getTime()).toBeGreaterThanOrEqual(900);
    }
    expect(polar.storedExternalIds().sort()).toEqual(tracked.map((e) => e.externalId).sort());
  });
});
