import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { useChromium, openTestPage, startHarness, waitFor } from './harness.js';

type W = { T: any };
type Fetch = { ids: string[]; start: number; end: number | null; status: number | null };

const rig = useChromium();

/** Opens `n` tabs of the same origin; without Web Locks when `locks` is false. */
async function openTabs(n: number, locks: boolean): Promise<Page[]> {
  const tabs: Page[] = [];
  for (let i = 0; i < n; i++) {
    const page = await rig.context!.newPage();
    if (!locks) await page.addInitScript(() => delete (Navigator.prototype as { locks?: unknown }).locks);
    tabs.push(await openTestPage(rig.context!, rig.h, page));
    expect(await page.evaluate(() => 'locks' in navigator)).toBe(locks);
  }
  return tabs;
}

describe('several tabs, in real Chromium', () => {
  for (const [count, locks] of [
    [2, true],
    [4, true],
    [2, false],
    [4, false],
  ] as const) {
    it(`${count} tabs tracking at once share one database, flush one at a time (${locks ? 'Web Locks' : 'IndexedDB lease'}) and deliver each event once`, async () => {
      rig.h = await startHarness({ latencyMs: 20 });
      rig.context = await rig.browser.newContext();
      const tabs = await openTabs(count, locks);
      await Promise.all(
        tabs.map((tab) => tab.evaluate(() => (window as unknown as W).T.open({ autoFlush: true, flushInterval: 50, batchSize: 15, leaseDuration: 5000 }))),
      );
      const perTab = 45;
      const tracked = await Promise.all(tabs.map((tab, i) => tab.evaluate((p) => (window as unknown as W).T.track(45, p), `tab${i}`)));
      const all = tracked.flat() as string[];
      expect(new Set(all).size).toBe(count * perTab);

      await waitFor(`all ${count * perTab} events on the server`, () => rig.h.polar.events.length === count * perTab, 30_000);
      const counts = rig.h.polar.countByExternalId();
      expect([...counts.keys()].sort()).toEqual([...all].sort());
      expect(Math.max(...counts.values())).toBe(1);

      // No two ingest requests, from any tabs, were ever in flight at the same time.
      const logs: Fetch[][] = await Promise.all(tabs.map((tab) => tab.evaluate(() => (window as unknown as W).T.log.fetches)));
      const requests = logs.flatMap((log, tab) => log.filter((f) => f.ids.length > 0).map((f) => ({ ...f, tab })));
      requests.sort((a, b) => a.start - b.start);
      for (let i = 1; i < requests.length; i++) {
        expect(
          requests[i]!.start,
          `request ${i} (tab ${requests[i]!.tab}) began before request ${i - 1} (tab ${requests[i - 1]!.tab}) ended`,
        ).toBeGreaterThanOrEqual(requests[i - 1]!.end!);
      }
      // Every tab sees one database: all sent.
      for (const tab of tabs) expect((await tab.evaluate(() => (window as unknown as W).T.stats())).sent).toBe(count * perTab);
    });
  }

  it('never passes maxQueueSize across tabs, and the room a flush makes in one tab is room in the other', async () => {
    rig.h = await startHarness();
    rig.context = await rig.browser.newContext();
    const [a, b] = (await openTabs(2, true)) as [Page, Page];
    const max = 400;
    await Promise.all([a, b].map((tab) => tab.evaluate((m) => (window as unknown as W).T.open({ maxQueueSize: m, autoFlush: false }), max)));
    /** trackMany(count) in a tab; resolves to 'ok' or the refusal's code. */
    const many = (tab: Page, count: number) =>
      tab.evaluate(async (n) => {
        const T = (window as unknown as W).T;
        try {
          await T.buffer.trackMany(Array.from({ length: n }, (_, i) => ({ name: 'fill.event', externalCustomerId: 'customer-1', metadata: { i } })));
          return 'ok';
        } catch (error) {
          return String((error as { code?: string }).code);
        }
      }, count);
    // Both tabs write at once: together they never pass the limit.
    const results = await Promise.all([many(a, 150), many(b, 150), many(a, 150), many(b, 150)]);
    expect(results.filter((r) => r === 'ok')).toHaveLength(2);
    expect(results.filter((r) => r === 'queue-full')).toHaveLength(2);
    expect(await many(b, 100)).toBe('ok');
    expect(await many(a, 1)).toBe('queue-full');
    expect((await a.evaluate(() => (window as unknown as W).T.stats())).pending).toBe(max);
    // A flush in tab a makes room that tab b sees at once.
    expect(await a.evaluate(() => (window as unknown as W).T.flush())).toMatchObject({ sent: max, remaining: 0 });
    expect(await many(b, max)).toBe('ok');
    expect(await many(a, 1)).toBe('queue-full');
  });

  it('sends the batch of a tab killed mid-flush at once under Web Locks: everything on the server within 5 s of the next flush', async () => {
    rig.h = await startHarness();
    rig.context = await rig.browser.newContext();
    const [dying, survivor] = await openTabs(2, true);
    // The default leaseDuration (30 s): the survivor must not wait for it.
    for (const tab of [dying!, survivor!]) await tab.evaluate(() => (window as unknown as W).T.open({ autoFlush: false }));
    const ids: string[] = await dying!.evaluate(() => (window as unknown as W).T.track(10, 'orphan'));
    // The dying tab's request hangs at the server and is lost with the tab.
    rig.h.polar.addFaults({ delayMs: 60_000 });
    void dying!.evaluate(() => void (window as unknown as W).T.flush());
    await waitFor('the hanging request', () => rig.h.polar.requests.some((r) => r.kind === 'ingest'));
    expect(await survivor!.evaluate(() => (window as unknown as W).T.flush())).toMatchObject({ stoppedBy: 'locked', sent: 0 });
    expect(await survivor!.evaluate(() => (window as unknown as W).T.stats())).toMatchObject({ pending: 0, sending: 10 });
    // A renderer crash: no pagehide, no unload handler, the claim record stays behind.
    const cdp = await rig.context.newCDPSession(dying!);
    const crashed = new Promise((resolve) => dying!.once('crash', resolve));
    void cdp.send('Page.crash').catch(() => undefined);
    await crashed;
    const started = Date.now();
    let report: { sent: number; remaining: number; stoppedBy?: string } | undefined;
    await waitFor('the survivor to take the lock', async () => {
      report = await survivor!.evaluate(() => (window as unknown as W).T.flush());
      return report!.stoppedBy !== 'locked';
    });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(report).toMatchObject({ sent: 10, remaining: 0 });
    const delivered = rig.h.polar
      .ingestRequests()
      .filter((r) => r.status === 200)
      .flatMap((r) => ((r.body as { events?: { external_id: string }[] })?.events ?? []).map((e) => e.external_id));
    expect(delivered.sort()).toEqual([...ids].sort());
  });

  it('takes over the IndexedDB lease of a tab that died while flushing, once the lease has expired', async () => {
    rig.h = await startHarness();
    rig.context = await rig.browser.newContext();
    const [dying, survivor] = await openTabs(2, false);
    const options = { leaseDuration: 1500 };
    await dying!.evaluate((o) => (window as unknown as W).T.open(o), options);
    await survivor!.evaluate((o) => (window as unknown as W).T.open(o), options);
    const ids: string[] = await dying!.evaluate(() => (window as unknown as W).T.track(10, 'orphan'));

    // The dying tab's request hangs at the server; it holds the lease (and its batch) meanwhile.
    rig.h.polar.addFaults({ delayMs: 60_000 });
    void dying!.evaluate(() => void (window as unknown as W).T.flush());
    await waitFor('the hanging request', () => rig.h.polar.requests.some((r) => r.kind === 'ingest'));
    const whileHeld = await survivor!.evaluate(() => (window as unknown as W).T.flush());
    expect(whileHeld.stoppedBy).toBe('locked');
    expect(whileHeld.sent).toBe(0);
    // The other tab reads the batch on the wire as `sending` (one lease record names it).
    expect(await survivor!.evaluate(() => (window as unknown as W).T.stats())).toMatchObject({ pending: 0, sending: 10 });

    // The tab dies (renderer crash: no pagehide, no cleanup, the lease record stays).
    const cdp = await rig.context.newCDPSession(dying!);
    const crashed = new Promise((resolve) => dying!.once('crash', resolve));
    // Page.crash never answers (the renderer is gone): wait for the crash event instead.
    void cdp.send('Page.crash').catch(() => undefined);
    await crashed;

    const outcomes: string[] = [];
    await waitFor('the survivor to take over and send', async () => {
      const report = await survivor!.evaluate(() => (window as unknown as W).T.flush());
      outcomes.push(report.stoppedBy ?? 'done');
      return report.remaining === 0 && report.stoppedBy === undefined;
    });
    expect(outcomes[0]).toBe('locked');
    expect(await survivor!.evaluate(() => (window as unknown as W).T.stats())).toMatchObject({ pending: 0, sending: 0, sent: 10 });
    expect(rig.h.polar.storedExternalIds().sort()).toEqual([...ids].sort());
  });

  it('fires "change" in every other tab when one tab tracks (BroadcastChannel)', async () => {
    rig.h = await startHarness();
    rig.context = await rig.browser.newContext();
    const tabs = await openTabs(4, true);
    for (const tab of tabs) await tab.evaluate(() => (window as unknown as W).T.open());
    await tabs[0]!.evaluate(() => (window as unknown as W).T.track(1, 'broadcast'));
    for (const tab of tabs.slice(1)) {
      await waitFor('a remote change', () =>
        tab.evaluate(() =>
          (window as unknown as W).T.log.changes.some((c: { source: string; reason: string }) => c.source === 'remote' && c.reason === 'track'),
        ),
      );
    }
    const own = await tabs[0]!.evaluate(() => (window as unknown as W).T.log.changes);
    expect(own).toEqual([{ reason: 'track', source: 'local' }]);
  });
});
