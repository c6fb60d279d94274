import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchChromium, waitFor } from './harness.js';
// @ts-expect-error: a plain .mjs script without types
import { startDemo } from '../../examples/browser/serve.mjs';

type Demo = { url: string; polar: import('../../dist/mock-server.js').MockPolarServer; close(): Promise<void> };

let browser: Browser;
let demo: Demo;
beforeAll(async () => {
  browser = await launchChromium();
  demo = await startDemo();
});
afterAll(async () => {
  await browser?.close();
  await demo?.close();
});

describe('the browser example (examples/browser), in real Chromium', () => {
  it('renders the queue while the server is down and the merged history after flush and reconcile (screenshots)', async () => {
    const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(demo.url);
    await page.waitForSelector('body[data-ready="true"]');
    const dir = mkdtempSync(join(tmpdir(), 'peb-screens-'));
    const empty = await page.screenshot({ path: join(dir, '1-empty.png') });

    await page.check('#offline');
    await page.click('#track10');
    await waitFor('10 queued rows', async () => (await page.locator('#queue tbody tr').count()) === 10);
    await waitFor('10 pending rows', async () => (await page.locator('#queue tbody td.s-pending').count()) === 10);
    const queued = await page.screenshot({ path: join(dir, '2-queued.png') });
    expect(demo.polar.events).toHaveLength(0);
    expect(await page.locator('#queue-count').textContent()).toBe('(10 waiting)');

    await page.uncheck('#offline');
    await waitFor('everything sent', async () => {
      await page.click('#flush');
      return demo.polar.events.length === 10;
    });
    await page.click('#reconcile');
    await waitFor('10 confirmed rows in the merged history', async () => (await page.locator('#history tbody td.s-confirmed').count()) === 10);
    const merged = await page.screenshot({ path: join(dir, '3-merged.png') });
    console.log(`[example] screenshots in ${dir}`);

    for (const png of [empty, queued, merged]) {
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      expect(png.length).toBeGreaterThan(10_000);
    }
    // Rendering the queue and then the history changed what is on screen.
    expect(queued.equals(empty)).toBe(false);
    expect(merged.equals(queued)).toBe(false);
    expect(statSync(join(dir, '2-queued.png')).size).toBe(queued.length);
    expect(Math.max(...demo.polar.countByExternalId().values())).toBe(1);
    expect(errors).toEqual([]);
    writeFileSync(join(dir, 'ok'), '');
    await context.close();
  });
});
