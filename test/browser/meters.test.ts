// polar-event-buffer/react in each engine: components re-render when an event is tracked, in the
// tab that tracked it and in a second tab on the same origin (issue 14: live updates across tabs).
// The harness serves the app bundled with React and the built dist/ entries (/bundle/meters-app.js).
import { describe, expect, it } from 'vitest';
import { ENGINE, type Session, startHarness, type Tab, useEngine, waitFor } from './harness.js';

type W = { M: any };
const rig = useEngine();

/** Opens the React test page in a new tab of `session` and opens its buffer. */
async function openTab(session: Session, options: Record<string, unknown> = {}): Promise<Tab> {
  return (await openTabWith(session, options)).page;
}

/** openTab that also gives what `M.open()` returned (the server-rendered markup when hydrating). */
async function openTabWith(session: Session, options: Record<string, unknown>): Promise<{ page: Tab; opened: unknown }> {
  const page = await session.newTab();
  await page.goto(`${rig.h.site}/pages/meters.html?api=${encodeURIComponent(rig.h.polar.url)}`);
  await waitFor('the React test page', () => page.evaluate(() => (window as unknown as W).M !== undefined));
  const opened = await page.evaluate((o) => (window as unknown as W).M.open(o), options);
  return { page, opened };
}

const text = (page: Tab, id: string) => page.evaluate((i) => (window as unknown as W).M.text(i), id);
const renders = (page: Tab, id: string) => page.evaluate((i) => (window as unknown as W).M.renders[i] as number, id);
/** Waits until every tab renders `expected` in the output `id`. */
const shows = (tabs: Tab[], id: string, expected: string) =>
  waitFor(`${id} to read "${expected}" in ${tabs.length} tab(s)`, async () => {
    for (const tab of tabs) if ((await text(tab, id)) !== expected) return false;
    return true;
  });

const METER = {
  id: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e',
  name: 'API calls',
  filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'api_call' }] },
  aggregation: { func: 'count' },
};

/** A customer session token for ada, as the app's backend would get it (POST /v1/customer-sessions/). */
async function sessionToken(): Promise<string> {
  const res = await fetch(`${rig.h.polar.url}/v1/customer-sessions/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ external_customer_id: 'ada' }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { token: string }).token;
}

/** What the portal requests the mock answered so far. */
const portalReads = () => rig.h.polar.requests.filter((r) => r.path.startsWith('/v1/customer-portal/meters/')).length;

describe(`polar-event-buffer/react, in ${ENGINE}`, () => {
  it('useBufferStats re-renders when an event is tracked, in this tab and in a second tab', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const a = await openTab(rig.session);
    const b = await openTab(rig.session);
    await waitFor('both tabs to render 0 pending', async () => (await text(a, 'pending')) === '0' && (await text(b, 'pending')) === '0');

    await a.evaluate(() => (window as unknown as W).M.track(3));
    await waitFor('tab A to render 3 pending', async () => (await text(a, 'pending')) === '3');
    await waitFor('tab B to render 3 pending', async () => (await text(b, 'pending')) === '3');

    await b.evaluate(() => (window as unknown as W).M.flush());
    expect(rig.h.polar.events).toHaveLength(3);
    await waitFor('tab A to render 0 pending after B flushed', async () => (await text(a, 'pending')) === '0');
  });

  it('useMeterUsage re-renders when an event is tracked, in this tab and in a second tab, and stays equal through flush and reconcile', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const a = await openTab(rig.session, { meter: METER });
    const b = await openTab(rig.session, { meter: METER });
    await shows([a, b], 'usage', '0 = 0 + 0 exact');
    const before = await renders(b, 'usage');

    // Two matching events and one the meter's filter leaves out.
    await a.evaluate(() => (window as unknown as W).M.track(2));
    await a.evaluate(() => (window as unknown as W).M.track(1, 'page_view'));
    await shows([a, b], 'usage', '2 = 0 + 2');
    expect(await renders(b, 'usage')).toBeGreaterThan(before);

    // B tracks: A moves.
    await b.evaluate(() => (window as unknown as W).M.track(1));
    await shows([a, b], 'usage', '3 = 0 + 3');

    // Sent and reconciled: the same usage, now all from the server's copy.
    await a.evaluate(() => (window as unknown as W).M.flush());
    expect(rig.h.polar.events.map((e) => e.name).sort()).toEqual(['api_call', 'api_call', 'api_call', 'page_view']);
    await b.evaluate(() => (window as unknown as W).M.reconcile());
    await shows([a, b], 'usage', '3 = 3 + 0 exact');
  });

  it('useMeterBalance drops at once in both tabs when an event is tracked while the server refuses ingest, and holds once it is sent', async () => {
    rig.h = await startHarness({ customers: [{ external_id: 'ada', email: 'ada@example.com' }], meters: [METER] });
    rig.h.polar.credit('ada', METER.id, 10);
    rig.h.polar.runMeterJobs(); // Polar's delayed meter job, run now: the credit shows
    const token = await sessionToken();
    rig.session = await rig.engine.newSession();
    const a = await openTab(rig.session, { meter: METER, token });
    const b = await openTab(rig.session, { meter: METER, token });
    await shows([a, b], 'balance', '10 left of 10 (0 unsent)');

    rig.h.polar.addFaults({ match: 'ingest', status: 503, times: 100 });
    await a.evaluate(() => (window as unknown as W).M.track(3));
    await shows([a, b], 'balance', '7 left of 10 (3 unsent)');
    const failed = await a.evaluate(() => (window as unknown as W).M.flush());
    expect(failed.sent).toBe(0);
    // (The credit is the one event stored: Polar's meter.credited system event.)
    expect(rig.h.polar.events.filter((e) => e.name === 'api_call')).toHaveLength(0);
    await shows([a, b], 'balance', '7 left of 10 (3 unsent)');

    // The server takes them; Polar's meter job has not run yet (it trails ingestion by 15 s or
    // more), so the device still counts them: the balance holds, it never rises.
    rig.h.polar.clearFaults();
    const reads = portalReads();
    // (The failed batch waits out its backoff before a flush sends it.)
    await waitFor('the 3 events on the server', async () => {
      await b.evaluate(() => (window as unknown as W).M.flush());
      return rig.h.polar.events.filter((e) => e.name === 'api_call').length === 3;
    });
    await shows([a, b], 'balance', '7 left of 10 (3 unsent)');
    expect(portalReads()).toBeGreaterThan(reads);
  });

  it('useMeterUsage renders the error of a meter Polar would refuse, and the page goes on rendering', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const bad = { ...METER, filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'near', value: 'api_call' }] } };
    const page = await openTab(rig.session, { meter: bad });
    const shown = await waitFor('the usage error', async () => {
      const t = await text(page, 'usage');
      return t?.startsWith('error: ') ? t : false;
    });
    expect(shown).toMatch(/operator/);
    // The other components of the same root still live: stats re-render on a track.
    await page.evaluate(() => (window as unknown as W).M.track(1));
    await shows([page], 'pending', '1');
  });

  it('hydrates server-rendered markup (loading) without a mismatch, then goes live', async () => {
    rig.h = await startHarness({ customers: [{ external_id: 'ada', email: 'ada@example.com' }], meters: [METER] });
    rig.h.polar.credit('ada', METER.id, 10);
    rig.h.polar.runMeterJobs(); // Polar's delayed meter job, run now: the credit shows
    const token = await sessionToken();
    rig.session = await rig.engine.newSession();
    const { page, opened } = await openTabWith(rig.session, { meter: METER, token, hydrate: true });
    // What renderToString gave (the markup a server sends): every hook loading.
    expect(
      String(opened)
        .match(/<output[^>]*>[^<]*<\/output>/g)
        ?.map((o) => o.replace(/<[^>]+>/g, '')),
    ).toEqual(['loading', 'loading', 'loading']);
    await shows([page], 'balance', '10 left of 10 (0 unsent)');
    await shows([page], 'usage', '0 = 0 + 0 exact');
    await page.evaluate(() => (window as unknown as W).M.track(2));
    await shows([page], 'balance', '8 left of 10 (2 unsent)');
    expect(await page.evaluate(() => (window as unknown as W).M.hydrationErrors)).toEqual([]);
  });

  it('useMeterBalance shows the error while the portal was never reached, then the balance once it answers', async () => {
    rig.h = await startHarness({ customers: [{ external_id: 'ada', email: 'ada@example.com' }], meters: [METER] });
    rig.h.polar.credit('ada', METER.id, 10);
    rig.h.polar.runMeterJobs(); // Polar's delayed meter job, run now: the credit shows
    const token = await sessionToken();
    rig.h.polar.setOnline(false);
    rig.session = await rig.engine.newSession();
    const page = await openTab(rig.session, { meter: METER, token });
    const shown = await waitFor('the portal error', async () => {
      const t = await text(page, 'balance');
      return t?.startsWith('error: ') ? t : false;
    });
    expect(shown).toContain('/v1/customer-portal/meters/');
    // A track reads only the local part: with no answer from the portal yet, still the error.
    await page.evaluate(() => (window as unknown as W).M.track(1));
    await shows([page], 'pending', '1');
    expect(await text(page, 'balance')).toBe(shown);

    rig.h.polar.setOnline(true);
    await waitFor('the balance once the portal answers (a flush asks it again)', async () => {
      await page.evaluate(() => (window as unknown as W).M.flush());
      return (await text(page, 'balance'))?.endsWith('left of 10 (1 unsent)');
    });
    // Sent, and not yet in Polar's meter (its job trails ingestion): still counted on the device.
    expect(await text(page, 'balance')).toBe('9 left of 10 (1 unsent)');
    expect(await page.evaluate(() => (window as unknown as W).M.error('balance'))).toBe('');
  });
});
