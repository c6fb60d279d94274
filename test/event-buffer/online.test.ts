import { afterEach, describe, expect, it, vi } from 'vitest';
import { createEventBuffer } from '../../src/event-buffer.js';
import { httpTransport } from '../../src/transport/http.js';
import type { EventBuffer, FlushReport } from '../../src/types.js';
import { autoClose, freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { createMirror } from '../../src/mirror/index.js';
import { setEnvironment } from '../../src/env.js';

// Node has no window: the environment seam gives the buffer one whose `online` event the test fires.
function pretendToBeAPage(): EventTarget {
  const window = new EventTarget();
  setEnvironment({ window });
  return window;
}
afterEach(() => setEnvironment(undefined));
// Registered after the hook above, so (after-hooks run in reverse) buffers close before the page goes.
const startPolar = useMockPolar();
const closeLater = autoClose();

async function setup() {
  const page = pretendToBeAPage();
  const server = await startPolar();
  const buffer = createEventBuffer({
    transport: httpTransport({ baseUrl: server.url, timeout: 1000 }),
    indexedDB: freshIndexedDB(),
    flushInterval: 0, // only the online event can start a flush
    // After the retries, the backoff kept with the events is a minute.
    retry: { retries: 0, minTimeout: 60_000, maxTimeout: 60_000, randomize: false },
  }) as unknown as EventBuffer;
  closeLater(buffer);
  await buffer.trackMany([1, 2, 3].map((i) => ({ name: 'api_call', externalCustomerId: 'user_1', metadata: { i } })) as never);
  return { page, server, buffer };
}

describe('the network coming back', () => {
  it('sends at once the events that were backing off only because the network was down', async () => {
    const { page, server, buffer } = await setup();
    server.setOnline(false);
    expect((await buffer.flush()).stoppedBy).toBe('retries-exhausted');
    const [event] = await createMirror(buffer).query({ externalCustomerId: 'user_1' });
    expect(event!.nextAttemptAt!.getTime()).toBeGreaterThan(Date.now() + 30_000);

    server.setOnline(true);
    page.dispatchEvent(new Event('online'));
    // The server stores the events before the client has settled them: wait for what is asserted.
    await vi.waitFor(async () => expect((await buffer.stats()).sent).toBe(3), { timeout: 10_000 });
    expect(server.events).toHaveLength(3);
  });

  it('when the network comes back during a flush, sends the events that waited only for it as soon as that flush ends', async () => {
    const { page, server, buffer } = await setup();
    server.setOnline(false);
    expect((await buffer.flush()).stoppedBy).toBe('retries-exhausted');
    server.setOnline(true);
    server.setLatency(300);
    // 300 new events: a flush of three batches (the three old events are backing off, not due).
    await buffer.trackMany(Array.from({ length: 300 }, (_, i) => ({ name: 'api_call', externalCustomerId: 'user_1', metadata: { i: 10 + i } })) as never);
    const before = server.ingestRequests().length;
    const running = buffer.flush();
    await vi.waitFor(() => expect(server.ingestRequests().length).toBeGreaterThan(before), { timeout: 10_000 });
    // The network is back while that flush runs: the reachability probe answers before it ends.
    page.dispatchEvent(new Event('online'));
    expect((await running).sent).toBe(300);
    server.setLatency(0);
    await vi.waitFor(async () => expect((await buffer.stats()).sent).toBe(303), { timeout: 10_000 });
    expect(server.events).toHaveLength(303);
  });

  it('still honours a wait the server asked for (Retry-After) when the network comes back', async () => {
    const { page, server, buffer } = await setup();
    server.addFaults({ status: 503, retryAfter: 120 });
    expect((await buffer.flush()).stoppedBy).toBe('retry-after');

    // One event tracked after the 503 is due: the flush the network's return starts sends it, and
    // its report is the signal that this flush ran (not a sleep).
    await buffer.track({ name: 'api_call', externalCustomerId: 'user_1', metadata: { i: 4 } } as never);
    const reported = new Promise<FlushReport>((resolve) => buffer.on('flush', resolve));
    page.dispatchEvent(new Event('online'));
    expect(await reported).toMatchObject({ sent: 1, remaining: 3 });
    expect(server.events.map((e) => e.metadata['i'])).toEqual([4]);
    expect((await buffer.stats()).pending).toBe(3);
  });
});
