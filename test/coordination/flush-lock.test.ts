// The flush lease, where Web Locks are missing (Node has none): one flusher per database.
import { describe, expect, it } from 'vitest';
import { createEventBuffer } from '../../src/event-buffer.js';
import type { EventBufferOptions } from '../../src/options.js';
import { httpTransport } from '../../src/transport/http.js';
import type { Transport } from '../../src/transport/transport.js';
import type { EventBuffer } from '../../src/types.js';
import { ManualClock } from '../event-buffer/support.js';
import { autoClose, freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';

const startPolar = useMockPolar();
const closeLater = autoClose();

/** A transport whose next ingest waits on the wire until `release()`. */
function gated(inner: Transport) {
  let release!: () => void;
  let entered!: () => void;
  const onWire = new Promise<void>((resolve) => (entered = resolve));
  const gate = new Promise<void>((resolve) => (release = resolve));
  let first = true;
  const transport: Transport = {
    async ingest(events, options) {
      if (first) {
        first = false;
        entered();
        await gate;
      }
      return inner.ingest(events, options);
    },
  };
  return { transport, onWire, release };
}

describe('the flush lease', () => {
  it('defect 12: a tab that finds its lease taken (frozen past it) stops flushing; the batch goes out from one tab', async () => {
    const polar = await startPolar();
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const clock = new ManualClock();
    // Another tab: the same database through another factory object (a realm's own lock is per factory).
    const open = (transport: Transport, indexedDB: IDBFactory = factory): EventBuffer => {
      const buffer = createEventBuffer({
        transport,
        indexedDB,
        dbName,
        clock,
        autoFlush: false,
        batchSize: 1,
        leaseDuration: 30_000,
        retry: { retries: 0 },
      } as EventBufferOptions) as unknown as EventBuffer;
      closeLater(buffer);
      return buffer;
    };
    const http = httpTransport({ baseUrl: polar.url });
    const a = gated(http);
    const b = gated(http);
    const tabA = open(a.transport);
    const tabB = open(b.transport, new Proxy(factory, {}));
    const events = await tabA.trackMany([1, 2, 3].map((n) => ({ name: 'api_call', externalCustomerId: 'user_42', metadata: { n } })));

    const flushA = tabA.flush();
    await a.onWire;
    // Tab A is frozen past its lease (none of its timers ran); tab B takes the lease and its batch.
    clock.current += 31_000;
    const flushB = tabB.flush();
    await b.onWire;
    // Tab A thaws: its renewal finds the lease taken, and its answer comes.
    clock.advance(0);
    a.release();
    expect(await flushA).toMatchObject({ sent: 1, stoppedBy: 'locked' });
    b.release();
    expect(await flushB).toMatchObject({ remaining: 0 });

    const carried = polar.ingestRequests().map((r) => (r.body as { events: { external_id: string }[] }).events.map((e) => e.external_id));
    // The first event went out from both tabs (A's batch, then B's claim of it); every other one once.
    for (const event of events.slice(1)) expect(carried.filter((ids) => ids.includes(event.externalId))).toHaveLength(1);
    expect(polar.storedExternalIds().sort()).toEqual(events.map((e) => e.externalId).sort());
  });
});
