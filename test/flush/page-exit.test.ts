// The page-exit send (pagehide): a send like any other, from what storage holds waiting.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createEventBuffer } from '../../src/event-buffer.js';
import { createMirror } from '../../src/mirror/mirror.js';
import type { MockPolarServer } from '../../src/mock-server/index.js';
import type { EventBufferOptions } from '../../src/options.js';
import { httpTransport } from '../../src/transport/http.js';
import type { EventCreateWire, Transport } from '../../src/transport/transport.js';
import type { EventBuffer } from '../../src/types.js';
import { autoClose, freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';

// Node has no window: the page's `pagehide` comes from this target (kept until the buffers closed).
let page: EventTarget;
beforeEach(() => {
  page = new EventTarget();
  vi.stubGlobal('addEventListener', page.addEventListener.bind(page));
  vi.stubGlobal('removeEventListener', page.removeEventListener.bind(page));
});
afterEach(() => vi.unstubAllGlobals());

const startPolar = useMockPolar();
const closeLater = autoClose();

/** httpTransport, recording the events of each keepalive send in the order they started. */
function recording(polar: MockPolarServer): { transport: Transport; keepalive: EventCreateWire[][] } {
  const inner = httpTransport({ baseUrl: polar.url });
  const keepalive: EventCreateWire[][] = [];
  const transport: Transport = {
    ingest(events, options) {
      if (options.keepalive) keepalive.push(events);
      return inner.ingest(events, options);
    },
    list: inner.list!.bind(inner),
  };
  return { transport, keepalive };
}

function open(transport: Transport, options: Partial<EventBufferOptions> = {}): EventBuffer {
  const buffer = createEventBuffer({
    transport,
    indexedDB: freshIndexedDB(),
    flushInterval: 0,
    retry: { retries: 0 },
    ...options,
  } as EventBufferOptions) as unknown as EventBuffer;
  closeLater(buffer);
  return buffer;
}

const ids = (events: EventCreateWire[] | undefined) => (events ?? []).map((e) => e.external_id);
const ev = (n: number, extra: Record<string, unknown> = {}) => ({ name: 'api_call', externalCustomerId: 'user_42', metadata: { n }, ...extra });

describe('the page-exit send', () => {
  it('defect 8: leaves out what another tab delivered and carries what is still waiting', async () => {
    const polar = await startPolar();
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const tabA = open(httpTransport({ baseUrl: polar.url }), { indexedDB: factory, dbName, autoFlush: false });
    const { transport, keepalive } = recording(polar);
    const tabB = open(transport, { indexedDB: factory, dbName });
    const delivered = await tabB.trackMany([ev(1), ev(2)]);
    let remoteFlush = false;
    tabB.on('change', (e) => {
      if (e.source === 'remote' && e.reason === 'flush') remoteFlush = true;
    });
    expect(await tabA.flush()).toMatchObject({ sent: 2 });
    await vi.waitFor(() => expect(remoteFlush).toBe(true));
    const fresh = await tabB.track(ev(3));
    await tabB.stats();

    page.dispatchEvent(new Event('pagehide'));
    expect(ids(keepalive[0])).toEqual([fresh.externalId]);
    expect(ids(keepalive[0])).not.toContain(delivered[0]!.externalId);
  });

  it('defect 9: skips an event over the keepalive budget instead of stopping at it', async () => {
    const polar = await startPolar();
    const { transport, keepalive } = recording(polar);
    // Polar takes 10 MiB bodies: only the keepalive budget is smaller than this event.
    const buffer = open(transport, { maxBatchBytes: 1_000_000 });
    const wide = Object.fromEntries(Array.from({ length: 130 }, (_, i) => [`k${i}`, 'x'.repeat(500)]));
    await buffer.track(ev(1, { metadata: wide }));
    const small = await buffer.track(ev(2));

    page.dispatchEvent(new Event('pagehide'));
    expect(ids(keepalive[0])).toEqual([small.externalId]);
  });

  it('defect 10: with the device clock ahead of the server, the page-exit send and every later send carry one body, confirmed once', async () => {
    const polar = await startPolar({ clockOffsetMs: -60_000 });
    const { transport, keepalive } = recording(polar);
    const buffer = open(transport, { retry: { retries: 0, minTimeout: 1, maxTimeout: 1 } });
    const mirror = createMirror(buffer);
    // One flush teaches the buffer the server's clock.
    await buffer.track(ev(0, { timestamp: new Date(Date.now() - 3_600_000) }));
    await buffer.flush();
    const event = await buffer.track(ev(1));

    page.dispatchEvent(new Event('pagehide'));
    expect(ids(keepalive[0])).toEqual([event.externalId]);
    await vi.waitFor(() => expect(polar.storedExternalIds()).toContain(event.externalId));
    // The flush pagehide started sends it again (the answer lost to the page).
    await buffer.flush();
    const sends = polar
      .ingestRequests()
      .flatMap((r) => (r.body as { events: EventCreateWire[] }).events)
      .filter((e) => e.external_id === event.externalId);
    expect(sends.length).toBeGreaterThanOrEqual(2);
    for (const body of sends) expect(body).toEqual(keepalive[0]![0]);

    await mirror.reconcile();
    expect(await buffer.stats()).toMatchObject({ pending: 0, sent: 0, confirmed: 2 });
    expect((await mirror.query()).filter((e) => e.metadata['n'] === 1)).toHaveLength(1);
  });

  it('sends a child only in the same request as its waiting parent', async () => {
    const polar = await startPolar();
    const { transport, keepalive } = recording(polar);
    const buffer = open(transport, { maxBatchBytes: 1_000_000 });
    const wide = Object.fromEntries(Array.from({ length: 130 }, (_, i) => [`k${i}`, 'x'.repeat(500)]));
    const parent = await buffer.track(ev(1, { metadata: wide }));
    await buffer.track(ev(2, { parentId: parent.externalId }));
    const other = await buffer.track(ev(3));

    page.dispatchEvent(new Event('pagehide'));
    expect(ids(keepalive[0])).toEqual([other.externalId]);
  });
});
