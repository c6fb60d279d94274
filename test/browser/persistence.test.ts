import { describe, expect, it } from 'vitest';
import { useChromium, launchProfile, openTestPage, startHarness, tempProfileDir } from './harness.js';

type W = { T: any };

const rig = useChromium();

describe('persistence in real Chromium', () => {
  it('keeps tracked events across a reload and sends each once afterwards', async () => {
    rig.h = await startHarness();
    rig.context = await rig.browser.newContext();
    const page = await openTestPage(rig.context, rig.h);
    await page.evaluate(() => (window as unknown as W).T.open());
    const ids: string[] = await page.evaluate(() => (window as unknown as W).T.track(25, 'reload'));
    expect(rig.h.polar.events).toHaveLength(0);

    await page.reload();
    await page.waitForFunction(() => (window as unknown as W).T !== undefined);
    await page.evaluate(() => (window as unknown as W).T.open());
    expect((await page.evaluate(() => (window as unknown as W).T.stats())).pending).toBe(25);
    const report = await page.evaluate(() => (window as unknown as W).T.flush());
    expect(report.sent).toBe(25);

    const counts = rig.h.polar.countByExternalId();
    expect([...counts.keys()].sort()).toEqual([...ids].sort());
    expect(Math.max(...counts.values())).toBe(1);
  });

  it('keeps tracked events across a browser restart with the same profile and sends each once afterwards', async () => {
    rig.h = await startHarness();
    const profile = tempProfileDir();
    try {
      let persistent = await launchProfile(profile.dir);
      let page = await openTestPage(persistent, rig.h, persistent.pages()[0]);
      await page.evaluate(() => (window as unknown as W).T.open());
      const ids: string[] = await page.evaluate(() => (window as unknown as W).T.track(30, 'restart'));
      await persistent.close();
      expect(rig.h.polar.events).toHaveLength(0);

      persistent = await launchProfile(profile.dir);
      page = await openTestPage(persistent, rig.h, persistent.pages()[0]);
      await page.evaluate(() => (window as unknown as W).T.open());
      expect((await page.evaluate(() => (window as unknown as W).T.stats())).pending).toBe(30);
      await page.evaluate(() => (window as unknown as W).T.flush());
      await persistent.close();

      const counts = rig.h.polar.countByExternalId();
      expect([...counts.keys()].sort()).toEqual([...ids].sort());
      expect(Math.max(...counts.values())).toBe(1);
    } finally {
      profile.remove();
    }
  });
});
