import { describe, expect, it } from 'vitest';
import { ENGINE, openTestPage, startHarness, useEngine, waitFor } from './harness.js';

type W = { T: any };
type Fetch = { keepalive: boolean; bytes: number; ids: string[]; status: number | null };

const rig = useEngine();

const KEEPALIVE_LIMIT = 64 * 1024;

describe(`the page going away, in ${ENGINE}`, () => {
  it('sends with fetch keepalive in bodies under 64 KB when the document becomes hidden', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const page = await openTestPage(rig.session!, rig.h);
    await page.evaluate(() => (window as unknown as W).T.open({ autoFlush: true, flushInterval: 0, batchSize: 1000, maxBatchBytes: 1_000_000 }));
    // One event of ~75 KB, larger than any keepalive body: it must wait for a normal flush, not die.
    const [big]: string[] = await page.evaluate(() =>
      (window as unknown as W).T.track(1, 'big', Object.fromEntries(Array.from({ length: 150 }, (_, k) => [`k${k}`, 'x'.repeat(480)]))),
    );
    // About 160 KB of events: more than one keepalive body can carry.
    const ids: string[] = await page.evaluate(() => (window as unknown as W).T.track(300, 'hidden', { note: 'x'.repeat(450) }));
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await waitFor('all 300 events on the server', () => rig.h.polar.events.length === 300);

    const fetches: Fetch[] = await page.evaluate(() => (window as unknown as W).T.log.fetches);
    const batches = fetches.filter((f) => f.ids.length > 0);
    expect(batches.length).toBeGreaterThan(2);
    for (const f of batches) {
      expect(f.keepalive).toBe(true);
      expect(f.bytes).toBeLessThanOrEqual(KEEPALIVE_LIMIT);
    }
    expect(rig.h.polar.storedExternalIds().sort()).toEqual([...ids].sort());
    // Once the hidden page's flush has ended, the big event is still waiting (not a dead letter),
    // and the next normal flush sends it.
    await waitFor("the hidden page's flush to end", () => page.evaluate(() => (window as unknown as W).T.log.flushes.length > 0));
    expect(await page.evaluate(() => (window as unknown as W).T.stats())).toMatchObject({ pending: 1, dead: 0 });
    expect(await page.evaluate(() => (window as unknown as W).T.flush())).toMatchObject({ sent: 1, deadLettered: 0 });
    expect(rig.h.polar.storedExternalIds()).toContain(big!);
  });

  it('sends on pagehide with keepalive, keeps the events until acknowledged, and a send that never completed stays one event on the server', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const page = await openTestPage(rig.session!, rig.h);
    await page.evaluate(() => (window as unknown as W).T.open({ autoFlush: true, flushInterval: 0 }));
    const ids: string[] = await page.evaluate(() => (window as unknown as W).T.track(20, 'pagehide', { note: 'y'.repeat(200) }));
    // The server stores what the last-chance send carries, but the answer never comes back.
    rig.h.polar.addFaults({ afterProcessing: true, drop: true, times: 5 });

    // Leave for an http page (Firefox does not run the exit send when leaving for about:blank).
    await page.goto(`${rig.h.site}/pages/away.html`);
    await waitFor('the pagehide send to land', () => rig.h.polar.events.length === 20);
    const lastChance = rig.h.polar.ingestRequests().find((r) => (r.body as { events: unknown[] }).events.length > 0)!;
    expect(Buffer.byteLength(JSON.stringify(lastChance.body))).toBeLessThanOrEqual(KEEPALIVE_LIMIT);
    rig.h.polar.clearFaults();

    // Back on the page: the events were never acknowledged, so they are still waiting.
    await openTestPage(rig.session!, rig.h, page);
    await page.evaluate(() => (window as unknown as W).T.open());
    const stats = await page.evaluate(() => (window as unknown as W).T.stats());
    expect(stats.pending + stats.sending).toBe(20);
    let duplicates = 0;
    await waitFor('everything acknowledged', async () => {
      const report = await page.evaluate(() => (window as unknown as W).T.flush());
      duplicates += report.duplicates;
      return report.remaining === 0;
    });
    // The server already held every one of them: it said so, and stored none twice.
    expect(duplicates).toBe(20);
    expect((await page.evaluate(() => (window as unknown as W).T.stats())).sent).toBe(20);
    expect(rig.h.polar.storedExternalIds().sort()).toEqual([...ids].sort());
  });

  it("leaves the events waiting, untouched, when the page's shared 64 KiB keepalive budget is spent by another request, and the next page sends them", async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const page = await openTestPage(rig.session!, rig.h);
    await page.evaluate(() => (window as unknown as W).T.open({ autoFlush: true, flushInterval: 0 }));
    const ids: string[] = await page.evaluate(() => (window as unknown as W).T.track(30, 'budget', { note: 'z'.repeat(300) }));
    // Another part of the page holds ~60 KB of the keepalive budget: a request the server keeps waiting.
    rig.h.polar.addFaults({ delayMs: 20_000 });
    await page.evaluate((api) => {
      void fetch(`${api}/v1/events/ingest`, {
        method: 'POST',
        keepalive: true,
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ events: [], pad: 'p'.repeat(60_000) }),
      }).catch(() => undefined);
    }, rig.h.polar.url);
    await waitFor('the other request to hold the budget', () => rig.h.polar.requests.some((r) => r.kind === 'ingest'));
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await waitFor("the hidden page's flush to end", () => page.evaluate(() => (window as unknown as W).T.log.flushes.length > 0));
    const fetches: Fetch[] = await page.evaluate(() => (window as unknown as W).T.log.fetches);
    // The browser refused our keepalive request: no budget left.
    expect(fetches.filter((f) => f.ids.length > 0).every((f) => f.keepalive && f.status === 0)).toBe(true);
    expect(rig.h.polar.storedExternalIds()).toEqual([]);
    expect(await page.evaluate(() => (window as unknown as W).T.stats())).toMatchObject({ pending: 30, dead: 0 });
    // The next page: the events are due at once (no attempt counted, no backoff) and all go out.
    await openTestPage(rig.session!, rig.h, page);
    await page.evaluate(() => (window as unknown as W).T.open());
    expect(await page.evaluate(() => (window as unknown as W).T.flush())).toMatchObject({ sent: 30, remaining: 0 });
    expect(rig.h.polar.storedExternalIds().sort()).toEqual([...ids].sort());
  });

  it('settles a track() called in the app\'s own pagehide handler at once: rejected with code "storage" naming pagehide, nothing stored, what was tracked before still sent', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const page = await openTestPage(rig.session!, rig.h);
    const ids: string[] = await page.evaluate(async () => {
      const w = window as unknown as W;
      // The app's handler comes first, before the buffer exists: the library must still know.
      addEventListener('pagehide', () => {
        localStorage.setItem('outcome', 'pending');
        w.T.buffer.track({ name: 'in.pagehide', externalCustomerId: 'customer-1' }).then(
          () => localStorage.setItem('outcome', 'stored'),
          (e: { code: string; message: string }) => localStorage.setItem('outcome', `${e.code}: ${e.message}`),
        );
      });
      w.T.open({ autoFlush: true, flushInterval: 0 });
      return w.T.track(3, 'before');
    });
    await page.goto(`${rig.h.site}/pages/away.html`);
    await waitFor('the exit send of the 3 earlier events', () => rig.h.polar.events.length === 3);
    const outcome = await page.evaluate(() => localStorage.getItem('outcome'));
    expect(outcome).toMatch(/^storage: .*pagehide/);
    await openTestPage(rig.session!, rig.h, page);
    await page.evaluate(() => (window as unknown as W).T.open());
    expect(await page.evaluate(() => (window as unknown as W).T.stats())).toMatchObject({ pending: 3, sending: 0 });
    expect(rig.h.polar.storedExternalIds().sort()).toEqual([...ids].sort());
  });

  for (const opened of [true, false]) {
    it(`settles a track() called right before location.href = ... (${opened ? 'database open' : 'first call: the database still opening'}), stored or rejected, never hanging`, async () => {
      rig.h = await startHarness();
      rig.session = await rig.engine.newSession();
      const page = await openTestPage(rig.session!, rig.h);
      await page.evaluate(async (open) => {
        const w = window as unknown as W;
        w.T.open({ autoFlush: true, flushInterval: 0 });
        if (open) await w.T.stats();
        setTimeout(() => {
          localStorage.setItem('outcome', 'pending');
          w.T.buffer.track({ name: 'before.navigation', externalCustomerId: 'customer-1' }).then(
            (e: { externalId: string }) => localStorage.setItem('outcome', `stored ${e.externalId}`),
            (e: { code: string; message: string }) => localStorage.setItem('outcome', `${e.code}: ${e.message}`),
          );
          location.href = '/pages/away.html';
        });
      }, opened);
      await waitFor('the next page', async () => (await page.url()).endsWith('/pages/away.html'));
      const outcome = await waitFor('the track() to settle', () =>
        page.evaluate(() => localStorage.getItem('outcome') !== 'pending' && localStorage.getItem('outcome')),
      );
      await openTestPage(rig.session!, rig.h, page);
      await page.evaluate(() => (window as unknown as W).T.open());
      const waiting = await page.evaluate(() => (window as unknown as W).T.stats());
      if (String(outcome).startsWith('stored ')) {
        // Stored: it is in the database (or already on the server through the exit send).
        const id = String(outcome).slice('stored '.length);
        expect(waiting.pending + waiting.sending === 1 || rig.h.polar.storedExternalIds().includes(id)).toBe(true);
      } else {
        expect(outcome).toMatch(/^storage: .*pagehide/);
      }
    });
  }
});
