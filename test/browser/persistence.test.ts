import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext } from 'playwright-core';
import { launchChromium, launchProfile, openTestPage, startHarness, tempProfileDir, type Harness } from './harness.js';

type W = { T: any };

let h: Harness;
let browser: Browser;
let context: BrowserContext | undefined;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  await context?.close();
  context = undefined;
  await h?.close();
});

describe('persistence in real Chromium', () => {
  it('keeps tracked events across a reload and sends each once afterwards', async () => {
    h = await startHarness();
    context = await browser.newContext();
    const page = await openTestPage(context, h);
    await page.evaluate(() => (window as unknown as W).T.open());
    const ids: string[] = await page.evaluate(() => (window as unknown as W).T.track(25, 'reload'));
    expect(h.polar.events).toHaveLength(0);

    await page.reload();
    await page.waitForFunction(() => (window as unknown as W).T !== undefined);
    await page.evaluate(() => (window as unknown as W).T.open());
    expect((await page.evaluate(() => (window as unknown as W).T.stats())).pending).toBe(25);
    const report = await page.evaluate(() => (window as unknown as W).T.flush());
    expect(report.sent).toBe(25);

    const counts = h.polar.countByExternalId();
    expect([...counts.keys()].sort()).toEqual([...ids].sort());
    expect(Math.max(...counts.values())).toBe(1);
  });

  it('keeps tracked events across a browser restart with the same profile and sends each once afterwards', async () => {
    h = await startHarness();
    const profile = tempProfileDir();
    try {
      let persistent = await launchProfile(profile.dir);
      let page = await openTestPage(persistent, h, persistent.pages()[0]);
      await page.evaluate(() => (window as unknown as W).T.open());
      const ids: string[] = await page.evaluate(() => (window as unknown as W).T.track(30, 'restart'));
      await persistent.close();
      expect(h.polar.events).toHaveLength(0);

      persistent = await launchProfile(profile.dir);
      page = await openTestPage(persistent, h, persistent.pages()[0]);
      await page.evaluate(() => (window as unknown as W).T.open());
      expect((await page.evaluate(() => (window as unknown as W).T.stats())).pending).toBe(30);
      await page.evaluate(() => (window as unknown as W).T.flush());
      await persistent.close();

      const counts = h.polar.countByExternalId();
      expect([...counts.keys()].sort()).toEqual([...ids].sort());
      expect(Math.max(...counts.values())).toBe(1);
    } finally {
      profile.remove();
    }
  });
});
