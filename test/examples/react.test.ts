// examples/react: the store behind useUsageEvents() follows the buffer, and the view renders the
// merged history with each event's delivery state (react-dom/server, no DOM needed).
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, test } from 'vitest';
import { createEventBuffer, httpTransport } from '../../src/index.js';
import { createMirror } from '../../src/mirror/index.js';
import { autoClose, freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import type { MockPolarOptions } from '../../src/mock-server/index.js';
import { createUsageStore, deliveryState } from '../../examples/react/use-usage-events.js';
import { UsageHistory, UsageHistoryView } from '../../examples/react/usage-history.js';
import { CreditsBar, CreditsBarView, CreditsGate, CreditsGateView } from '../../examples/react/credits-bar.js';

const startPolar = useMockPolar();
const close = autoClose();

async function setup() {
  const polar = await startPolar();
  const buffer = createEventBuffer({
    transport: httpTransport({ baseUrl: polar.url }),
    indexedDB: freshIndexedDB(),
    autoFlush: false,
    defaults: { externalCustomerId: 'ada' },
  });
  close(buffer);
  return { polar, buffer, mirror: createMirror(buffer) };
}

describe('examples/react', () => {
  test('the history shows confirmed, sent and pending events with their state', async () => {
    const { buffer, mirror } = await setup();
    await buffer.track({ name: 'first', metadata: { n: 1 } });
    await buffer.flush();
    await mirror.reconcile({ externalCustomerId: 'ada' }); // first: confirmed
    await buffer.track({ name: 'second', metadata: { n: 2 } });
    await buffer.flush(); // second: sent
    await buffer.track({ name: 'third', metadata: { n: 3 } }); // third: pending

    const store = createUsageStore(mirror, { externalCustomerId: 'ada' });
    await store.refresh();
    const html = renderToStaticMarkup(createElement(UsageHistoryView, { state: store.getSnapshot() }));

    const rows = [...html.matchAll(/<tr data-state="(\w+)"><td>[^<]*<\/td><td>(\w+)<\/td>/g)].map((m) => [m[2], m[1]]);
    expect(rows).toEqual([
      ['first', 'confirmed'],
      ['second', 'sent'],
      ['third', 'pending'],
    ]);
    expect(html).toContain('Pending: on this device, not sent yet');
  });

  test('the store refreshes when the buffer changes', async () => {
    const { buffer, mirror } = await setup();
    const store = createUsageStore(mirror);
    const changed = new Promise<void>((resolve) => {
      const unsubscribe = store.subscribe(() => {
        if (store.getSnapshot().events.length === 1) {
          unsubscribe();
          resolve();
        }
      });
    });

    await buffer.track({ name: 'later' });
    await changed;

    expect(store.getSnapshot().events.map((e) => [e.name, deliveryState(e)])).toEqual([['later', 'pending']]);
  });

  test('the hook renders a loading state on the server, before any query answered', async () => {
    const { mirror } = await setup();
    const html = renderToStaticMarkup(createElement(UsageHistory, { mirror }));
    expect(html).toBe('<p>Loading usage…</p>');
  });
});

// The credits bar runs on the built entries, as an app imports them (dist/, from `npm run build`).
describe('examples/react credits bar', () => {
  const METER = {
    id: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e',
    name: 'API calls',
    filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'api_call' }] },
    aggregation: { func: 'count' },
  };

  async function setupCredits(credits: number) {
    const dist = {
      ...(await import('polar-event-buffer')),
      ...(await import('polar-event-buffer/mirror')),
      ...(await import('polar-event-buffer/meters')),
    };
    // The portal counts at once (a mock that imitates Polar's meter lag recomputes on every read).
    const polar = await startPolar({ customers: [{ external_id: 'ada', email: 'ada@example.com' }], meters: [METER], meterLag: 0 } as MockPolarOptions);
    polar.credit('ada', METER.id, credits);
    const session = await fetch(`${polar.url}/v1/customer-sessions/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ external_customer_id: 'ada' }),
    });
    const { token } = (await session.json()) as { token: string };
    const buffer = dist.createEventBuffer({ transport: dist.httpTransport({ baseUrl: polar.url }), indexedDB: freshIndexedDB(), autoFlush: false });
    close(buffer);
    const mirror = dist.createMirror(buffer);
    const portal = dist.customerPortalTransport({ baseUrl: polar.url, token: () => token, meters: [METER] });
    return { polar, buffer, mirror, portal, meterBalance: dist.meterBalance };
  }

  test('renders loading on the server (no IndexedDB read, no portal request)', async () => {
    const { polar, mirror, portal } = await setupCredits(5);
    const props = { mirror, portal, meterId: METER.id, externalCustomerId: 'ada' };
    expect(renderToStaticMarkup(createElement(CreditsBar, props))).toBe('<p>Loading credits…</p>');
    expect(renderToStaticMarkup(createElement(CreditsGate, props as never, 'the app'))).toBe('');
    expect(polar.requests.filter((r) => r.path.startsWith('/v1/customer-portal/'))).toHaveLength(0);
  });

  test('shows the portal balance lowered by the events Polar does not count yet, and gates at zero', async () => {
    const { mirror, portal, buffer, meterBalance } = await setupCredits(5);
    await buffer.trackMany([1, 2].map((i) => ({ name: 'api_call', externalCustomerId: 'ada', metadata: { i } })));
    const state = { data: await meterBalance(mirror, portal, METER.id, { externalCustomerId: 'ada' }), error: undefined, loading: false };
    const html = renderToStaticMarkup(createElement(CreditsBarView, { state } as never));
    expect(html).toContain('<b>3</b> credits left of 5');
    expect(html).toContain('(2 used, not counted by Polar yet)');
    expect(html).toContain('<meter min="0" max="5" value="3">');
    expect(renderToStaticMarkup(createElement(CreditsGateView, { state } as never, 'the app'))).toBe('the app');

    await buffer.trackMany([3, 4, 5].map((i) => ({ name: 'api_call', externalCustomerId: 'ada', metadata: { i } })));
    const empty = { data: await meterBalance(mirror, portal, METER.id, { externalCustomerId: 'ada' }), error: undefined, loading: false };
    expect(renderToStaticMarkup(createElement(CreditsBarView, { state: empty } as never))).toContain('<b>0</b> credits left of 5');
    expect(renderToStaticMarkup(createElement(CreditsGateView, { state: empty } as never, 'the app'))).toBe('<p role="alert">You are out of credits.</p>');
  });
});
