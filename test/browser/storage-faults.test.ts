// What a real engine's IndexedDB does under the library, in each engine: a connection closed under
// it, a connection met through a VersionError, a transaction aborted mid-write, a full disk, no
// storage at all; and, in Chromium, the database wiped while open (CDP Storage.clearDataForOrigin).
// Faults an engine cannot be made to produce on demand are injected into that engine's own
// IndexedDB objects (a real connection closed, a real transaction aborted).
import { describe, expect, it } from 'vitest';
import { ENGINE, itNeeds, openTestPage, startHarness, type Tab, useEngine, waitFor } from './harness.js';

type W = { T: any; conns: IDBDatabase[]; fault: { putsBeforeAbort?: number; quota?: boolean } };
const rig = useEngine();

/** A page whose every IndexedDB connection is kept in `window.conns` (so a test can close one). */
async function open(options: Record<string, unknown> = {}): Promise<Tab> {
  rig.h = await startHarness();
  rig.session = await rig.engine.newSession();
  const page = await openTestPage(rig.session, rig.h);
  await page.evaluate((o) => {
    const w = window as unknown as W;
    w.conns = [];
    const open = IDBFactory.prototype.open;
    IDBFactory.prototype.open = function (this: IDBFactory, ...args: [string, number?]) {
      const request = open.apply(this, args);
      request.addEventListener('success', () => w.conns.push(request.result));
      return request;
    };
    w.T.open(o);
  }, options);
  return page;
}

/** Runs `fn(window.T)` in the page. */
const T = <R>(page: Tab, fn: (T: any) => R | Promise<R>): Promise<Awaited<R>> => page.evaluate(`(${fn.toString()})(window.T)`);
/** track() that resolves to 'ok' or the rejection's code and message. */
const tryTrack = (page: Tab, count = 1) =>
  page.evaluate(async (n) => {
    try {
      await (window as unknown as W).T.track(n, 'fault');
      return 'ok';
    } catch (error) {
      const e = error as { code?: string; message?: string };
      return `${e.code}: ${e.message}`;
    }
  }, count);

describe(`IndexedDB faults, in ${ENGINE}`, () => {
  it('a connection closed under the library (no close event yet): the next track() reopens and nothing is lost', async () => {
    const page = await open();
    await T(page, (t) => t.track(5, 'before'));
    // What the engine does to a connection it drops (WebKit: "Connection to Indexed Database
    // server lost"): every transaction() on it throws InvalidStateError.
    expect(await page.evaluate(() => (window as unknown as W).conns.length)).toBe(1);
    await page.evaluate(() => (window as unknown as W).conns[0]!.close());
    expect(await tryTrack(page, 3)).toBe('ok');
    expect(await T(page, (t) => t.stats())).toMatchObject({ pending: 8 });
    expect(await page.evaluate(() => (window as unknown as W).conns.length)).toBe(2);
    expect(await T(page, (t) => t.flush())).toMatchObject({ sent: 8, remaining: 0 });
    expect(rig.h.polar.storedExternalIds()).toHaveLength(8);
  });

  it('a connection the browser closed with a close event: the next track() and flush() go on without a reload', async () => {
    const page = await open();
    await T(page, (t) => t.track(4, 'before'));
    await page.evaluate(() => {
      const db = (window as unknown as W).conns[0]!;
      db.close();
      db.dispatchEvent(new Event('close'));
    });
    expect(await tryTrack(page, 2)).toBe('ok');
    expect(await T(page, (t) => t.flush())).toMatchObject({ sent: 6, remaining: 0 });
    expect(await T(page, (t) => t.log.errors)).toEqual([]);
  });

  it('a connection opened through a VersionError keeps its versionchange and close handlers: a newer upgrade is not blocked, a close is survived', async () => {
    const page = await open();
    await T(page, (t) => t.track(1, 'first'));
    // A newer library in another tab moves the database up (this tab lets go) and goes away.
    const other = await openTestPage(rig.session!, rig.h);
    const version: number = await other.evaluate(
      () =>
        new Promise<number>((resolve, reject) => {
          const request = indexedDB.open('browser-suite', 10);
          request.onupgradeneeded = () => request.result.createObjectStore('fromNewerVersion');
          request.onerror = () => reject(request.error);
          request.onsuccess = () => (request.result.close(), resolve(request.result.version));
        }),
    );
    expect(version).toBe(10);
    // This (older) tab reopens it at the version it finds and tracks.
    await T(page, (t) => t.track(2, 'older'));
    // An even newer tab upgrades again: the older tab must let go at once.
    const upgrade = await other.evaluate(
      () =>
        new Promise<{ blocked: boolean; version: number }>((resolve, reject) => {
          const request = indexedDB.open('browser-suite', 11);
          // Blocked means the older tab holds on to its connection: the upgrade (and a newer tab's
          // track()) would wait for as long as that tab lives.
          request.onblocked = () => resolve({ blocked: true, version: -1 });
          request.onerror = () => reject(request.error);
          request.onsuccess = () => (request.result.close(), resolve({ blocked: false, version: request.result.version }));
        }),
    );
    expect(upgrade).toEqual({ blocked: false, version: 11 });
    // And the older tab goes on, also after its connection is closed under it.
    expect(await tryTrack(page, 2)).toBe('ok');
    await page.evaluate(() => (window as unknown as W).conns.at(-1)!.close());
    expect(await tryTrack(page, 1)).toBe('ok');
    expect(await T(page, (t) => t.flush())).toMatchObject({ sent: 6, remaining: 0 });
  });

  it('a transaction aborted mid-write: trackMany() rejects with code "storage", stores nothing of it, and the next track() works', async () => {
    const page = await open();
    await T(page, (t) => t.track(2, 'before'));
    const outcome = await page.evaluate(async () => {
      const w = window as unknown as W;
      // The engine aborts the write transaction after its third put (AbortError at commit).
      const put = IDBObjectStore.prototype.put;
      let puts = 0;
      IDBObjectStore.prototype.put = function (this: IDBObjectStore, ...args: [unknown, IDBValidKey?]) {
        const request = put.apply(this, args);
        if (this.name === 'events' && ++puts === 3) this.transaction.abort();
        return request;
      };
      try {
        await w.T.buffer.trackMany(Array.from({ length: 10 }, (_, i) => ({ name: 'many', externalCustomerId: 'c', metadata: { i } })));
        return 'ok';
      } catch (error) {
        return (error as { code: string }).code;
      } finally {
        IDBObjectStore.prototype.put = put;
      }
    });
    expect(outcome).toBe('storage');
    expect(await T(page, (t) => t.stats())).toMatchObject({ pending: 2 });
    expect(await tryTrack(page, 1)).toBe('ok');
    expect(await T(page, (t) => t.flush())).toMatchObject({ sent: 3, remaining: 0 });
    expect(rig.h.polar.storedExternalIds()).toHaveLength(3);
  });

  it('a full disk (QuotaExceededError): track() rejects with code "storage" naming it, writes nothing, and works once there is room', async () => {
    const page = await open();
    await T(page, (t) => t.track(2, 'before'));
    const outcome = await page.evaluate(async () => {
      const w = window as unknown as W;
      const put = IDBObjectStore.prototype.put;
      IDBObjectStore.prototype.put = () => {
        throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      };
      try {
        await w.T.track(1, 'full');
        return 'ok';
      } catch (error) {
        const e = error as { code: string; message: string };
        return `${e.code}: ${e.message}`;
      } finally {
        IDBObjectStore.prototype.put = put;
      }
    });
    expect(outcome).toMatch(/^storage: .*QuotaExceededError/);
    expect(await T(page, (t) => t.stats())).toMatchObject({ pending: 2 });
    expect(await tryTrack(page, 1)).toBe('ok');
    expect(await T(page, (t) => t.flush())).toMatchObject({ sent: 3, remaining: 0 });
  });

  it('no storage (blocked, as Safari and private modes do): track(), stats() and flush() reject with code "storage", nothing is kept in memory or sent', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const page = await openTestPage(rig.session, rig.h);
    const outcomes = await page.evaluate(async () => {
      const w = window as unknown as W;
      IDBFactory.prototype.open = () => {
        throw new DOMException('The operation is insecure.', 'SecurityError');
      };
      w.T.open({ autoFlush: true, flushInterval: 50 });
      const code = (p: Promise<unknown>) =>
        p.then(
          () => 'ok',
          (e: { code?: string; message?: string }) => `${e.code}: ${e.message}`,
        );
      return [await code(w.T.track(1, 'blocked')), await code(w.T.stats()), await code(w.T.flush())];
    });
    for (const o of outcomes) expect(o).toMatch(/^storage: .*SecurityError/);
    expect(rig.h.polar.ingestRequests().filter((r) => (r.body as { events: unknown[] }).events.length > 0)).toEqual([]);
  });

  it('no IndexedDB at all: createEventBuffer throws NoIndexedDBError (code "no-indexeddb"), never an in-memory buffer', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const page = await openTestPage(rig.session, rig.h);
    const outcome = await page.evaluate(() => {
      const w = window as unknown as W;
      Object.defineProperty(window, 'indexedDB', { value: undefined, configurable: true });
      try {
        w.T.open();
        return 'created';
      } catch (error) {
        return (error as { code: string }).code;
      }
    });
    expect(outcome).toBe('no-indexeddb');
  });

  itNeeds(
    ['cdp'],
    'the database wiped while open (Chromium force-closes and deletes it, Storage.clearDataForOrigin): an "error" says how many waiting events were lost, and tracking goes on',
    async () => {
      const page = await open();
      await T(page, (t) => t.track(7, 'doomed'));
      // What Chromium does on a corrupt backing store, and what "Clear site data" does.
      await (await page.cdp()).send('Storage.clearDataForOrigin', { origin: rig.h.site, storageTypes: 'indexeddb' });
      expect(await tryTrack(page, 1)).toBe('ok');
      expect(await T(page, (t) => t.stats())).toMatchObject({ pending: 1 });
      const errors = await waitFor('the loss reported', async () => {
        const e: string[] = await T(page, (t) => t.log.errors);
        return e.length > 0 ? e : false;
      });
      expect(errors).toEqual([expect.stringMatching(/deleted by the browser.*7 waiting events lost/)]);
    },
  );
});
