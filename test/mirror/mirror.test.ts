import { IDBIndex, IDBObjectStore } from 'fake-indexeddb';
import { describe, expect, it, vi } from 'vitest';
import { createEventBuffer } from '../../src/event-buffer.js';
import { ClosedError, TransportError } from '../../src/errors.js';
import { forEachMerged } from '../../src/mirror/merged.js';
import { createMirror } from '../../src/mirror/mirror.js';
import type { ChangeEvent, EventBuffer } from '../../src/types.js';
import type { LocalEvent } from '../../src/mirror/types.js';
import type { Transport } from '../../src/transport/transport.js';
import { customerKeyOf } from '../../src/storage/serialize.js';
import { CUSTOMER_ID } from '../fixtures/events-list/polar-wire.js';
import { countCalls } from '../helpers/count-calls.js';
import { autoClose, freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';
import { seed, useRig } from './support.js';

const rig = useRig();
const closeLater = autoClose();
/** An hour ago, on a whole second (inside the default retention). */
const T0 = Math.floor((Date.now() - 3_600_000) / 1000) * 1000;

describe('createMirror()', () => {
  it('refuses what is not a buffer made by createEventBuffer()', async () => {
    const { buffer } = await rig();
    for (const notABuffer of [undefined, null, {}, { ...buffer }, 'buffer']) {
      expect(() => createMirror(notABuffer as never)).toThrow(TypeError);
    }
    expect(() => createMirror({} as never)).toThrow(/createEventBuffer\(\)/);
  });

  it('checks its options eagerly, with a TypeError naming the option', async () => {
    const { buffer } = await rig();
    expect(() => createMirror(buffer, { retention: { maxEvents: 0 } })).toThrow(/`retention.maxEvents`.*got 0/);
    expect(() => createMirror(buffer, { retention: { maxEvents: 2.5 } })).toThrow(/`retention.maxEvents` to be an integer/);
    expect(() => createMirror(buffer, { retention: { maxAge: -Infinity } })).toThrow(/`retention.maxAge`/);
    expect(() => createMirror(buffer, { retention: { maxAgeDays: 3 } as never })).toThrow(/`retention.maxAgeDays`/);
    expect(() => createMirror(buffer, { retention: 'long' as never })).toThrow(/`retention` to be an object/);
    expect(() => createMirror(buffer, { confirmGracePeriod: Number.NaN })).toThrow(/`confirmGracePeriod`.*got NaN/);
    expect(() => createMirror(buffer, { confirmGracePeriod: Infinity })).toThrow(/`confirmGracePeriod`/);
    expect(() => createMirror(buffer, { retension: {} } as never)).toThrow(/Unknown option `retension`/);
    expect(() => createMirror(buffer, null as never)).toThrow(TypeError);
    // Infinity is allowed where it means "keep everything".
    expect(() => createMirror(buffer, { retention: { maxAge: Infinity, maxEvents: Infinity }, confirmGracePeriod: 0 })).not.toThrow();
  });

  it('is where retention and confirmGracePeriod went: createEventBuffer() points there', async () => {
    const { transport } = await rig();
    const options = { transport, indexedDB: freshIndexedDB(), autoFlush: false };
    expect(() => createEventBuffer({ ...options, retention: {} } as never)).toThrow(/`retention`.*createMirror/);
    expect(() => createEventBuffer({ ...options, confirmGracePeriod: 1 } as never)).toThrow(/`confirmGracePeriod`.*createMirror/);
  });

  it('is closed with its buffer: reconcile(), query() and forEachMerged() reject with ClosedError', async () => {
    const { polar, buffer, mirror } = await rig();
    seed(polar, 3, (i) => T0 + i);
    await mirror.reconcile();
    await buffer.close();
    await expect(mirror.reconcile()).rejects.toBeInstanceOf(ClosedError);
    await expect(mirror.query()).rejects.toBeInstanceOf(ClosedError);
    await expect(forEachMerged(mirror, {}, () => undefined)).rejects.toBeInstanceOf(ClosedError);
    expect(() => createMirror(buffer)).toThrow(ClosedError);
  });

  it('the buffer waits for a running reconcile before it closes its database', async () => {
    const { polar, transport, another } = await rig();
    seed(polar, 150, (i) => T0 + i);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let lists = 0;
    const slow: Transport = {
      ingest: (events, options) => transport.ingest(events, options),
      // The second page is answered only after close() was called.
      list: async (query, options) => {
        const answer = await transport.list!(query, { signal: new AbortController().signal });
        if (++lists === 2) await gate;
        void options;
        return answer;
      },
    };
    const { buffer, mirror } = another({ transport: slow });
    const running = mirror.reconcile();
    await vi.waitFor(() => expect(lists).toBe(2), { timeout: 10_000 });
    const closed = buffer.close();
    release();
    // The page in flight is applied (it is the last), not cut by a database closed under it.
    expect((await running).added).toBe(150);
    await closed;
  });

  it('a closed mirror stops listening; the buffer goes on', async () => {
    const { buffer, mirror } = await rig();
    const seen: ChangeEvent[] = [];
    mirror.on('change', (e) => seen.push(e));
    await mirror.close();
    await buffer.track({ name: 'api_call', externalCustomerId: 'user_42' });
    expect(seen).toEqual([]);
    expect((await buffer.stats()).pending).toBe(1);
    await expect(mirror.query()).rejects.toBeInstanceOf(ClosedError);
  });

  it('refuses unknown event names and handlers that are not functions', async () => {
    const { mirror } = await rig();
    expect(() => mirror.on('flush' as never, () => undefined)).toThrow(/Unknown event "flush"/);
    expect(() => mirror.on('change', 'handler' as never)).toThrow(TypeError);
  });
});

describe('mirror "change"', () => {
  it('fires for the buffer\'s own track, flush and clear', async () => {
    const { buffer, mirror } = await rig();
    const seen: ChangeEvent[] = [];
    mirror.on('change', (e) => seen.push(e));
    await buffer.track({ name: 'api_call', externalCustomerId: 'user_42' });
    await buffer.flush();
    await buffer.clear({ externalCustomerId: 'user_42' });
    expect(seen).toEqual([
      { reason: 'track', source: 'local' },
      { reason: 'flush', source: 'local' },
      { reason: 'clear', source: 'local' },
    ]);
  });

  it('fires when another buffer on the same database (another tab) changes it', async () => {
    const { transport } = await rig();
    const indexedDB = freshIndexedDB();
    const dbName = uniqueDbName('mirror-change');
    const open = (): EventBuffer => {
      const buffer = createEventBuffer({ transport, indexedDB, dbName, autoFlush: false });
      closeLater(buffer);
      return buffer;
    };
    const here = open();
    const otherTab = open();
    const mirror = createMirror(here);
    const seen: ChangeEvent[] = [];
    mirror.on('change', (e) => seen.push(e));
    await otherTab.track({ name: 'api_call', externalCustomerId: 'user_42' });
    await vi.waitFor(() => expect(seen).toEqual([{ reason: 'track', source: 'remote' }]), { timeout: 5_000 });
    // And what the other tab wrote is in this tab's merged view.
    expect((await mirror.query()).map((e) => e.name)).toEqual(['api_call']);
  });
});

describe('forEachMerged()', () => {
  /**
   * user_42: 100 server events, 2 tracked events confirmed by a reconcile, 1 sent (not listed
   * yet), 1 dead, 2 pending; two other customers: 100 server events each. The mirror holds 302.
   */
  async function history() {
    const { polar, transport, another } = await rig();
    let refuse = false;
    const switchable: Transport = {
      ingest: async (events, options) => {
        if (refuse) throw new TransportError('refused', { status: 422, detail: [{ msg: 'bad', loc: ['body', 'events', 0, 'name'] }] });
        return transport.ingest(events, options);
      },
      list: (query, options) => transport.list!(query, options),
    };
    const { buffer, mirror } = another({ transport: switchable });
    seed(polar, 100, (i) => T0 + i * 10);
    seed(polar, 100, (i) => T0 + i * 10, { external_customer_id: 'other_1' });
    seed(polar, 100, (i) => T0 + i * 10, { external_customer_id: 'other_2' });
    const track = (name: string) => buffer.track({ name, externalCustomerId: 'user_42', timestamp: new Date(T0 + 5000) });
    await track('confirmed_1');
    await track('confirmed_2');
    await buffer.flush();
    expect((await mirror.reconcile()).matched).toBe(2);
    await track('sent');
    await buffer.flush();
    refuse = true;
    await track('dead');
    await buffer.flush();
    await track('pending_1');
    await track('pending_2');
    expect(await buffer.stats()).toMatchObject({ pending: 2, sent: 1, confirmed: 2, dead: 1, mirrored: 302 });
    return { buffer, mirror };
  }

  it('visits each event once, mirrored and local, never a dead one, as query() shows them', async () => {
    const { mirror } = await history();
    const visited: LocalEvent[] = [];
    await forEachMerged(mirror, { externalCustomerId: 'user_42' }, (e) => visited.push(e));
    const ids = visited.map((e) => e.externalId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(100 + 2 + 1 + 2);
    const byName = (name: string) => visited.filter((e) => e.name === name);
    expect(byName('confirmed_1').map((e) => [e.status, e.userEvent?.name])).toEqual([['confirmed', 'confirmed_1']]);
    expect(byName('sent').map((e) => e.status)).toEqual(['sent']);
    expect(byName('pending_1').map((e) => e.status)).toEqual(['pending']);
    expect(byName('dead')).toEqual([]);
    expect(visited.filter((e) => e.name === 'api_call').every((e) => e.status === 'confirmed' && e.userEvent !== undefined)).toBe(true);
    const queried = await mirror.query({ externalCustomerId: 'user_42', limit: Infinity });
    expect(new Set(ids)).toEqual(new Set(queried.map((e) => e.externalId)));

    const everyone: string[] = [];
    await forEachMerged(mirror, {}, (e) => everyone.push(e.externalId));
    expect(new Set(everyone).size).toBe(everyone.length);
    expect(everyone).toHaveLength(300 + 2 + 1 + 2);

    const window: LocalEvent[] = [];
    await forEachMerged(mirror, { externalCustomerId: 'user_42', since: new Date(T0 + 500), until: new Date(T0 + 5000) }, (e) => window.push(e));
    // Server events at T0 + 500 ... T0 + 990; the tracked ones (at T0 + 5000) are past `until`.
    expect(window).toHaveLength(50);
  });

  it('reads one customer through its index ranges with cursors: never the whole mirror, never a getAll', async () => {
    const { mirror } = await history();
    const indexGetAlls = countCalls(IDBIndex.prototype, 'getAll');
    const storeGetAlls: unknown[] = [];
    countCalls(IDBObjectStore.prototype, 'getAll', ([range]) => storeGetAlls.push(range));
    const ranges: unknown[] = [];
    countCalls(IDBIndex.prototype, 'openCursor', ([range]) => ranges.push(range));
    const storeCursors = countCalls(IDBObjectStore.prototype, 'openCursor');
    let visited = 0;
    await forEachMerged(mirror, { externalCustomerId: 'user_42' }, () => visited++);
    expect(visited).toBe(105);
    expect(indexGetAlls.calls).toBe(0);
    // No getAll at all: the batch on the wire (shown `sending`) is one `meta` record, read by key.
    expect(storeGetAlls).toEqual([]);
    expect(storeCursors.calls).toBe(0);
    // A mirror cursor and a local one per key the customer is known by, each over that key's
    // [customerKey, time] range.
    const keys = [customerKeyOf({ externalCustomerId: 'user_42' }), customerKeyOf({ customerId: CUSTOMER_ID })];
    expect(ranges.map((r) => (r as IDBKeyRange).lower[0]).sort()).toEqual([...keys, ...keys].sort());
    for (const range of ranges) expect(range).toMatchObject({ lower: [expect.any(String), -Infinity], upper: [expect.any(String), Infinity] });
  });

  it('shows the events of a batch on the wire as `sending`', async () => {
    const { transport, another } = await rig();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let onWire = false;
    const held: Transport = {
      ingest: async (events, options) => {
        onWire = true;
        await gate;
        return transport.ingest(events, options);
      },
    };
    const { buffer, mirror } = another({ transport: held });
    await buffer.track({ name: 'api_call', externalCustomerId: 'user_42' });
    const flushing = buffer.flush();
    await vi.waitFor(() => expect(onWire).toBe(true), { timeout: 5_000 });
    const statuses: string[] = [];
    await forEachMerged(mirror, {}, (e) => statuses.push(e.status));
    release();
    await flushing;
    expect(statuses).toEqual(['sending']);
  });

  it('rethrows what visit throws, as it is, and refuses unknown filters', async () => {
    const { mirror } = await history();
    const mine = new Error('meter failed');
    await expect(
      forEachMerged(mirror, {}, () => {
        throw mine;
      }),
    ).rejects.toBe(mine);
    await expect(forEachMerged(mirror, { name: 'x' } as never, () => undefined)).rejects.toThrow(/Unknown filter `name`/);
    await expect(forEachMerged({} as never, {}, () => undefined)).rejects.toThrow(/createMirror\(\)/);
  });
});
