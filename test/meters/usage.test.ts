import { IDBIndex, IDBObjectStore } from 'fake-indexeddb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createEventBuffer } from '../../src/event-buffer.js';
import { meterUsage } from '../../src/meters/usage.js';
import { watchMeterUsage } from '../../src/meters/live.js';
import type { MeterUsage } from '../../src/meters/usage.js';
import { createMirror } from '../../src/mirror/mirror.js';
import type { EventBufferOptions } from '../../src/options.js';
import { httpTransport } from '../../src/transport/http.js';
import { heldTransport } from '../event-buffer/support.js';
import { autoClose, freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';
import { MovableClock, useRig } from '../mirror/support.js';

const rig = useRig();
const close = autoClose();

/** Sum of `tokens` over the `llm` events: distinct powers of ten show any event counted twice or missed. */
const TOKENS = {
  filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'llm' }] },
  aggregation: { func: 'sum', property: 'tokens' },
};
const COUNT = { filter: TOKENS.filter, aggregation: { func: 'count' } };
const USER = { externalCustomerId: 'user_42' };
const llm = (tokens: number, extra: Record<string, unknown> = {}) => ({ name: 'llm', ...USER, metadata: { tokens }, ...extra });

describe('meterUsage over a buffer and its mirror', () => {
  it('counts mirrored, sent and pending events once each, and never a dead letter', async () => {
    const { polar, buffer, mirror } = await rig();
    // Another device's events, already on the server.
    polar.addEvents([1, 2].map((tokens, i) => ({ name: 'llm', external_customer_id: 'user_42', timestamp: Date.now() - 60_000 + i, metadata: { tokens } })));
    // Tracked here, sent and confirmed: mirrored and local records, counted once.
    await buffer.trackMany([llm(10), llm(20)]);
    await buffer.flush();
    await mirror.reconcile(USER);
    // Refused by the server: dead.
    await buffer.track(llm(1000));
    polar.addFaults({ status: 422, body: { detail: [{ type: 'value_error', loc: ['body', 'events', 0, 'metadata'], msg: 'refused', input: null }] } });
    expect((await buffer.flush()).deadLettered).toBe(1);
    // Sent, not confirmed yet; and pending.
    await buffer.track(llm(100));
    await buffer.flush();
    await buffer.track(llm(200));
    // Not the meter's: another name, another customer.
    await buffer.trackMany([{ name: 'other', ...USER, metadata: { tokens: 5000 } }, llm(9000, { externalCustomerId: 'user_7' })]);

    const stats = await buffer.stats();
    expect(stats).toMatchObject({ confirmed: 2, dead: 1, sent: 1 });
    expect(await meterUsage(mirror, TOKENS, USER)).toEqual({ value: 333, server: 33, local: 300, exact: false });
    expect(await meterUsage(mirror, COUNT, USER)).toEqual({ value: 6, server: 4, local: 2, exact: false });

    // Once the rest is confirmed, everything is the server's.
    await buffer.flush();
    await mirror.reconcile(USER);
    expect(await meterUsage(mirror, TOKENS, USER)).toEqual({ value: 333, server: 333, local: 0, exact: true });
  });

  it('reads the customer under either reference, and only the time range asked', async () => {
    const { polar, buffer, mirror } = await rig();
    const t = Date.UTC(2026, 10, 15);
    polar.addEvents([{ name: 'llm', customer_id: (polar.customers[0] as { id: string }).id, timestamp: t - 1, metadata: { tokens: 1 } }]);
    await mirror.reconcile({ customerId: (polar.customers[0] as { id: string }).id, since: new Date(t - 86_400_000) });
    await buffer.trackMany([llm(10, { timestamp: new Date(t) }), llm(100, { timestamp: new Date(t + 1000) })]);
    // The server event names the customer by id and by its external id (user_42): one customer.
    expect((await meterUsage(mirror, TOKENS, USER)).value).toBe(111);
    expect((await meterUsage(mirror, TOKENS, { ...USER, since: new Date(t), until: new Date(t + 1000) })).value).toBe(10);
  });

  it('keeps value === server + local for float sums, each part a compensated sum', async () => {
    const { polar, buffer, mirror } = await rig();
    polar.addEvents(
      Array.from({ length: 10 }, (_, i) => ({ name: 'llm', external_customer_id: 'user_42', timestamp: Date.now() - 10_000 + i, metadata: { tokens: 0.1 } })),
    );
    await mirror.reconcile(USER);
    await buffer.trackMany(Array.from({ length: 3 }, () => llm(0.1)));
    const usage = await meterUsage(mirror, TOKENS, USER);
    expect(usage.server).toBe(1); // a naive running sum of ten 0.1 gives 0.9999999999999999
    expect(usage.local).toBeCloseTo(0.3, 15);
    expect(usage.value).toBe(usage.server + usage.local);
  });

  it('counts an event on the wire (sending) once, as local', async () => {
    const held = heldTransport();
    const buffer = createEventBuffer({ transport: held.transport, indexedDB: freshIndexedDB(), autoFlush: false } as EventBufferOptions);
    close(buffer);
    const mirror = createMirror(buffer);
    await buffer.trackMany([llm(10), llm(20)]);
    const flushing = buffer.flush();
    await held.onWire;
    expect(await buffer.stats()).toMatchObject({ sending: 2, pending: 0 });
    expect(await meterUsage(mirror, TOKENS, USER)).toEqual({ value: 30, server: 0, local: 30, exact: false });
    held.release();
    await flushing;
    expect(await meterUsage(mirror, TOKENS, USER)).toEqual({ value: 30, server: 0, local: 30, exact: false });
  });

  it('counts one event once in every state of its life: waiting, on the wire, sent and unlisted, resent, confirmed', async () => {
    const clock = new MovableClock();
    const { polar, buffer, mirror } = await rig({ clock, confirmGracePeriod: 60_000 }, { listingLag: 3_600_000 });
    polar.addEvents([{ name: 'llm', external_customer_id: 'user_42', timestamp: Date.now() - 600_000, metadata: { tokens: 1 } }]);
    await mirror.reconcile(USER); // the seeded event is listed at once; the ones ingested from now on lag an hour
    const usage = () => meterUsage(mirror, TOKENS, USER);
    const seen: [string, MeterUsage][] = [];

    await buffer.track(llm(10));
    seen.push(['pending', await usage()]);
    polar.setLatency(200);
    const flushing = buffer.flush();
    await vi.waitFor(async () => expect(await buffer.stats()).toMatchObject({ sending: 1 }), { timeout: 10_000 });
    seen.push(['sending', await usage()]);
    await flushing;
    polar.setLatency(0);
    await mirror.reconcile(USER); // Polar does not list it yet
    expect(await buffer.stats()).toMatchObject({ sent: 1 });
    seen.push(['sent, unlisted', await usage()]);
    clock.offset += 120_000; // past the grace period: the next reconcile queues it again
    expect((await mirror.reconcile(USER)).resent).toBe(1);
    expect(await buffer.stats()).toMatchObject({ pending: 1 });
    seen.push(['waiting again', await usage()]);
    expect((await buffer.flush()).duplicates).toBe(1);
    seen.push(['resent', await usage()]);
    // Polar's copy, as its list will show it: confirms the local event.
    expect((await mirror.reconcile(polar.events.filter((e) => e.metadata['tokens'] === 10))).matched).toBe(1);
    expect(await buffer.stats()).toMatchObject({ confirmed: 1, pending: 0, sent: 0 });
    seen.push(['confirmed', await usage()]);

    const local = { value: 11, server: 1, local: 10, exact: false };
    expect(seen).toEqual([
      ['pending', local],
      ['sending', local],
      ['sent, unlisted', local],
      ['waiting again', local],
      ['resent', local],
      ['confirmed', { value: 11, server: 11, local: 0, exact: true }],
    ]);
    expect(polar.events.filter((e) => e.metadata['tokens'] === 10)).toHaveLength(1);
  });

  it("reads only the customer's time range of the mirror, through its customer index", async () => {
    const { polar, mirror } = await rig();
    const t = Date.now() - 86_400_000;
    polar.addEvents(
      Array.from({ length: 30 }, (_, i) => ({
        name: 'llm',
        external_customer_id: i % 3 === 0 ? 'user_42' : 'user_7',
        timestamp: t + i * 1000,
        metadata: { tokens: 1 },
      })),
    );
    await mirror.reconcile();
    const reads = spyIndexReads();
    expect((await meterUsage(mirror, COUNT, { ...USER, since: new Date(t + 15_000) })).value).toBe(5);
    const mirrorReads = reads.filter((r) => r.store === 'mirror');
    // One range per key the customer is known by (its external id and Polar's id).
    expect(new Set(mirrorReads.map((r) => r.index))).toEqual(new Set(['byCustomer']));
    expect(mirrorReads.reduce((n, r) => n + r.returned, 0)).toBe(5);
    expect(reads.filter((r) => r.store === 'events').map((r) => r.index)).toEqual(['byStatus', 'byStatus']);
  });

  it('refuses a malformed meter and bad options before reading anything', async () => {
    const { mirror } = await rig();
    await expect(
      meterUsage(mirror, { filter: { conjunction: 'and', clauses: [{ property: '', operator: 'eq', value: 1 }] }, aggregation: { func: 'count' } }, USER),
    ).rejects.toMatchObject({
      code: 'meter-definition',
      path: 'filter.clauses.0.property',
    });
    await expect(meterUsage(mirror, TOKENS, { name: 'llm' } as never)).rejects.toThrow(TypeError);
  });
});

/** Counts reads of the mirror store (its indexes' cursors and getAll). */
function spyMirrorReads() {
  const originals = [
    [IDBIndex.prototype, 'openCursor'],
    [IDBIndex.prototype, 'getAll'],
    [IDBObjectStore.prototype, 'openCursor'],
    [IDBObjectStore.prototype, 'getAll'],
  ] as const;
  const saved = originals.map(([proto, key]) => [proto, key, proto[key]] as const);
  const counter = { mirror: 0, events: 0 };
  for (const [proto, key, original] of saved) {
    (proto as any)[key] = function (this: IDBIndex | IDBObjectStore, ...args: unknown[]) {
      const store = 'objectStore' in this ? this.objectStore.name : this.name;
      if (store === 'mirror') counter.mirror++;
      if (store === 'events') counter.events++;
      return (original as any).apply(this, args);
    };
  }
  afterEach(() => {
    for (const [proto, key, original] of saved) (proto as any)[key] = original;
  });
  return counter;
}

/** Records each getAll on an index: which store and index, and how many records it returned. */
function spyIndexReads() {
  const original = IDBIndex.prototype.getAll;
  const reads: { store: string; index: string; returned: number }[] = [];
  IDBIndex.prototype.getAll = function (this: IDBIndex, ...args: unknown[]) {
    const request = (original as any).apply(this, args) as IDBRequest<unknown[]>;
    const entry = { store: this.objectStore.name, index: this.name, returned: -1 };
    reads.push(entry);
    request.addEventListener('success', () => (entry.returned = request.result.length));
    return request;
  } as typeof original;
  afterEach(() => {
    IDBIndex.prototype.getAll = original;
  });
  return reads;
}

/** The `count`-th value a watch heard, once it has. */
async function nextValue(values: MeterUsage[], count: number): Promise<MeterUsage> {
  await vi.waitFor(() => expect(values.length).toBeGreaterThanOrEqual(count), { timeout: 10_000 });
  return values[count - 1]!;
}

describe('watchMeterUsage', () => {
  it('tells the usage now, on a track without reading the mirror, and on a reconcile', async () => {
    const { polar, buffer, mirror } = await rig();
    polar.addEvents([{ name: 'llm', external_customer_id: 'user_42', timestamp: Date.now() - 60_000, metadata: { tokens: 1 } }]);
    await mirror.reconcile(USER);
    const values: MeterUsage[] = [];
    const stop = watchMeterUsage(mirror, TOKENS, USER, (u) => values.push(u));
    expect(await nextValue(values, 1)).toEqual({ value: 1, server: 1, local: 0, exact: true });

    const reads = spyMirrorReads();
    await buffer.track(llm(10));
    expect(await nextValue(values, 2)).toEqual({ value: 11, server: 1, local: 10, exact: false });
    await buffer.flush(); // pending -> sent: the same usage, so no new value
    expect(reads.mirror).toBe(0);
    expect(reads.events).toBeGreaterThan(0);

    await mirror.reconcile(USER);
    expect(await nextValue(values, 3)).toEqual({ value: 11, server: 11, local: 0, exact: true });
    expect(reads.mirror).toBeGreaterThan(0);
    stop();
    // A watch still subscribed hears the next track; the stopped one does not.
    const others: MeterUsage[] = [];
    watchMeterUsage(mirror, TOKENS, USER, (u) => others.push(u));
    await nextValue(others, 1);
    await buffer.track(llm(100));
    expect(await nextValue(others, 2)).toMatchObject({ value: 111 });
    expect(values).toHaveLength(3);
  });

  it('coalesces a burst of tracks into few reads and ends on the right value', async () => {
    const { buffer, mirror } = await rig();
    const values: MeterUsage[] = [];
    watchMeterUsage(mirror, COUNT, USER, (u) => values.push(u));
    await nextValue(values, 1);
    await Promise.all(Array.from({ length: 30 }, () => buffer.track(llm(1))));
    await vi.waitFor(() => expect(values.at(-1)).toEqual({ value: 30, server: 0, local: 30, exact: false }), { timeout: 10_000 });
    expect(values.length).toBeLessThan(31);
  });

  it('hears another tab: a track there, and a reconcile there that confirms events of this view', async () => {
    const { polar } = await rig();
    const factory = freshIndexedDB();
    const dbName = uniqueDbName('meters-tabs');
    const open = () => {
      const buffer = createEventBuffer({
        transport: httpTransport({ baseUrl: polar.url }),
        indexedDB: factory,
        dbName,
        autoFlush: false,
        retry: { retries: 0 },
      } as EventBufferOptions);
      close(buffer);
      return { buffer, mirror: createMirror(buffer) };
    };
    const tabA = open();
    const tabB = open();
    const values: MeterUsage[] = [];
    watchMeterUsage(tabA.mirror, TOKENS, USER, (u) => values.push(u));
    await nextValue(values, 1);
    await tabB.buffer.track(llm(10));
    expect(await nextValue(values, 2)).toEqual({ value: 10, server: 0, local: 10, exact: false });
    await tabB.buffer.flush();
    await tabB.mirror.reconcile(USER);
    expect(await nextValue(values, 3)).toEqual({ value: 10, server: 10, local: 0, exact: true });
  });

  it('throws at once for a malformed meter, and stops quietly when the mirror closes', async () => {
    const { buffer, mirror } = await rig();
    expect(() => watchMeterUsage(mirror, { filter: {}, aggregation: { func: 'count' } }, USER, () => undefined)).toThrow(/filter.conjunction/);
    const errors: unknown[] = [];
    const values: MeterUsage[] = [];
    watchMeterUsage(mirror, COUNT, { ...USER, onError: (e) => errors.push(e) }, (u) => values.push(u));
    await nextValue(values, 1);
    await mirror.close();
    const changed = new Promise((resolve) => buffer.on('change', resolve));
    await buffer.track(llm(1));
    await changed;
    await buffer.stats(); // a read queued after the change: a watch still running would have read by now
    expect(errors).toEqual([]);
    expect(values).toHaveLength(1);
  });
});
