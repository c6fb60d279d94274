import { describe, expect, it, vi } from 'vitest';
import { createEventBuffer } from '../../src/event-buffer.js';
import { ClosedError } from '../../src/errors.js';
import { createMirror } from '../../src/mirror/mirror.js';
import type { ChangeEvent, EventBuffer } from '../../src/types.js';
import type { Transport } from '../../src/transport/transport.js';
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

  it('is closed with its buffer: reconcile() and query() reject with ClosedError', async () => {
    const { polar, buffer, mirror } = await rig();
    seed(polar, 3, (i) => T0 + i);
    await mirror.reconcile();
    await buffer.close();
    await expect(mirror.reconcile()).rejects.toBeInstanceOf(ClosedError);
    await expect(mirror.query()).rejects.toBeInstanceOf(ClosedError);
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
    expect(() => mirror.on('flush' as never, () => undefined)).toThrow(/`eventName` to be one of reconcile, change, error, got "flush"/);
    expect(() => mirror.on('change', 'handler' as never)).toThrow(TypeError);
  });
});

describe('mirror "change"', () => {
  it("fires for the buffer's own track, flush and clear", async () => {
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
