import { describe, expect, it } from 'vitest';
import { ENGINE, itNeeds, openTestPage, startHarness, type Tab, useEngine, waitFor } from './harness.js';

type W = { T: any };
type Fetch = { ids: string[]; start: number; end: number | null; status: number | null };

const rig = useEngine();

/** Opens `n` tabs of the same origin; without Web Locks when `locks` is false. */
async function openTabs(n: number, locks: boolean): Promise<Tab[]> {
  const tabs: Tab[] = [];
  for (let i = 0; i < n; i++) {
    const tab = await openTestPage(rig.session!, rig.h, undefined, locks ? '' : '&locks=0');
    expect(await tab.evaluate(() => 'locks' in navigator)).toBe(locks);
    tabs.push(tab);
  }
  return tabs;
}

describe(`several tabs, in ${ENGINE}`, () => {
  for (const [count, locks] of [
    [2, true],
    [4, true],
    [2, false],
    [4, false],
  ] as const) {
    it(`${count} tabs tracking at once share one database, flush one at a time (${locks ? 'Web Locks' : 'IndexedDB lease'}) and deliver each event once`, async () => {
      rig.h = await startHarness({ latencyMs: 20 });
      rig.session = await rig.engine.newSession();
      const tabs = await openTabs(count, locks);
      await Promise.all(
        tabs.map((tab) => tab.evaluate(() => (window as unknown as W).T.open({ autoFlush: true, flushInterval: 50, batchSize: 15, leaseDuration: 5000 }))),
      );
      const perTab = 45;
      const tracked = await Promise.all(tabs.map((tab, i) => tab.evaluate((p) => (window as unknown as W).T.track(45, p), `tab${i}`)));
      const all = tracked.flat() as string[];
      expect(new Set(all).size).toBe(count * perTab);

      // The signal asserted below is each tab's own view: wait for it, not for the server (the
      // server stores a batch before the tab has read the answer and marked it sent).
      for (const [i, tab] of tabs.entries()) {
        await waitFor(
          `tab ${i} to see all ${count * perTab} sent`,
          async () => (await tab.evaluate(() => (window as unknown as W).T.stats())).sent === count * perTab,
          30_000,
        );
      }
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
    });
  }

  it('never passes maxQueueSize across tabs, and the room a flush makes in one tab is room in the other', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const [a, b] = (await openTabs(2, true)) as [Tab, Tab];
    const max = 400;
    await Promise.all([a, b].map((tab) => tab.evaluate((m) => (window as unknown as W).T.open({ maxQueueSize: m, autoFlush: false }), max)));
    /** trackMany(count) in a tab; resolves to 'ok' or the refusal's code. */
    const many = (tab: Tab, count: number) =>
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

  itNeeds(['crash'], 'sends the batch of a tab killed mid-flush at once under Web Locks: everything on the server within 5 s of the next flush', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
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
    await dying!.crash();
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

  itNeeds(['crash'], 'takes over the IndexedDB lease of a tab that died while flushing, once the lease has expired', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
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
    await dying!.crash();

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
    rig.session = await rig.engine.newSession();
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
