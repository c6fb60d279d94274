import { describe, expect, it } from 'vitest';
import { ENGINE, itNeeds, openTestPage, startHarness, tempProfileDir, useEngine, waitFor } from './harness.js';

type W = { T: any };

const rig = useEngine();

describe(`persistence in ${ENGINE}`, () => {
  it('keeps tracked events across a reload and sends each once afterwards', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const page = await openTestPage(rig.session, rig.h);
    await page.evaluate(() => (window as unknown as W).T.open());
    const ids: string[] = await page.evaluate(() => (window as unknown as W).T.track(25, 'reload'));
    expect(rig.h.polar.events).toHaveLength(0);

    await page.reload();
    await waitFor('the reloaded page', () => page.evaluate(() => (window as unknown as W).T !== undefined));
    await page.evaluate(() => (window as unknown as W).T.open());
    expect((await page.evaluate(() => (window as unknown as W).T.stats())).pending).toBe(25);
    const report = await page.evaluate(() => (window as unknown as W).T.flush());
    expect(report.sent).toBe(25);

    // Each once: the 25 events in exactly one accepted request.
    expect(rig.h.polar.ingestRequests().filter((r) => r.result?.inserted === 25)).toHaveLength(1);
    expect(rig.h.polar.storedExternalIds().sort()).toEqual([...ids].sort());
  });

  it('asks the browser to persist the storage once with persist: true and reports the answer, usage and quota', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const page = await openTestPage(rig.session, rig.h);
    const stats = await page.evaluate(async () => {
      let calls = 0;
      const persist = navigator.storage.persist.bind(navigator.storage);
      navigator.storage.persist = () => (calls++, persist());
      const T = (window as unknown as W).T;
      T.open({ persist: true });
      await T.track(3, 'persist');
      const first = await T.stats();
      await T.stats();
      return { ...first, calls, granted: await navigator.storage.persisted() };
    });
    expect(stats.calls).toBe(1);
    expect(stats.persisted).toBe(stats.granted);
    expect(stats.usage).toBeGreaterThan(0);
    expect(stats.quota).toBeGreaterThan(stats.usage);
  });

  itNeeds(['restart'], 'keeps tracked events across a browser restart with the same profile and sends each once afterwards', async () => {
    rig.h = await startHarness();
    const profile = tempProfileDir();
    try {
      let persistent = await rig.engine.launchProfile(profile.dir);
      let page = await openTestPage(persistent, rig.h);
      await page.evaluate(() => (window as unknown as W).T.open());
      const ids: string[] = await page.evaluate(() => (window as unknown as W).T.track(30, 'restart'));
      await persistent.close();
      expect(rig.h.polar.events).toHaveLength(0);

      persistent = await rig.engine.launchProfile(profile.dir);
      page = await openTestPage(persistent, rig.h);
      await page.evaluate(() => (window as unknown as W).T.open());
      expect((await page.evaluate(() => (window as unknown as W).T.stats())).pending).toBe(30);
      await page.evaluate(() => (window as unknown as W).T.flush());
      await persistent.close();

      expect(rig.h.polar.ingestRequests().filter((r) => r.result?.inserted === 30)).toHaveLength(1);
      expect(rig.h.polar.storedExternalIds().sort()).toEqual([...ids].sort());
    } finally {
      profile.remove();
    }
  });
});
