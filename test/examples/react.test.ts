// examples/react: the store behind useUsageEvents() follows the buffer, and the view renders the
// merged history with each event's delivery state (react-dom/server, no DOM needed).
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, test } from 'vitest';
import { createEventBuffer, httpTransport } from '../../src/index.js';
import { createMirror } from '../../src/mirror/index.js';
import { autoClose, freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { createUsageStore, deliveryState } from '../../examples/react/use-usage-events.js';
import { UsageHistory, UsageHistoryView } from '../../examples/react/usage-history.js';

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
