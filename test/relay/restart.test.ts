import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, test, vi } from 'vitest';
import { createEventBuffer, httpTransport, type EventBuffer } from '../../src/index.js';
import { createRelay, nodeListener } from '../../src/relay/index.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { TOKEN, authenticate, manualClock } from './support.js';

const startPolar = useMockPolar();

/** A relay process on a fixed port: `kill()` drops every open connection unanswered, like a crash. */
async function relayProcess(polarUrl: string, port: number, window: number, manual = true) {
  const clock = manualClock();
  const relay = createRelay({ accessToken: TOKEN, authenticate, baseUrl: polarUrl, window, ...(manual ? { clock } : {}) });
  const server = createServer(nodeListener(relay));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    relay,
    clock,
    port: (server.address() as AddressInfo).port,
    async kill() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function devices(port: number, names: string[]): EventBuffer[] {
  return names.map((name) =>
    createEventBuffer({
      transport: httpTransport({ baseUrl: `http://127.0.0.1:${port}`, headers: () => ({ Authorization: `Bearer ${name}` }) }),
      indexedDB: new IDBFactory(),
      autoFlush: false,
      retry: { retries: 0, minTimeout: 1, maxTimeout: 5, randomize: false },
    }),
  );
}

/** Flushes until everything is sent (the buffer's backoff says when it is due again). */
async function drain(buffer: EventBuffer): Promise<void> {
  await vi.waitFor(
    async () => {
      await buffer.flush();
      expect(await buffer.stats()).toMatchObject({ pending: 0, sending: 0 });
    },
    { timeout: 10_000, interval: 20 },
  );
}

describe('a relay restarted mid-window', () => {
  test('killed before its window went to Polar: the devices resend to the new relay, each event stored once', async () => {
    const polar = await startPolar({ token: TOKEN });
    const first = await relayProcess(polar.url, 0, 60_000);
    const [alice, bob] = devices(first.port, ['alice', 'bob']);
    for (const [b, who] of [
      [alice!, 'alice'],
      [bob!, 'bob'],
    ] as const) {
      for (let i = 0; i < 3; i++) await b.track({ name: `${who}-${i}`, externalCustomerId: who });
    }

    const flushes = Promise.all([alice!.flush(), bob!.flush()]);
    await vi.waitFor(() => expect(first.relay.stats().waiting).toBe(2));
    await first.kill();
    expect((await flushes).map((r) => r.sent)).toEqual([0, 0]);
    expect(polar.ingestRequests()).toEqual([]);

    const second = await relayProcess(polar.url, first.port, 50, false);
    await Promise.all([drain(alice!), drain(bob!)]);

    expect(polar.events.map((e) => e.name).sort()).toEqual(['alice-0', 'alice-1', 'alice-2', 'bob-0', 'bob-1', 'bob-2']);
    expect([...polar.countByExternalId().values()].every((n) => n === 1)).toBe(true);
    await second.relay.close();
    await second.kill();
    await Promise.all([alice!.close(), bob!.close()]);
  });

  test('killed after Polar stored the window but before answering: the resends are counted once, as duplicates', async () => {
    const polar = await startPolar({ token: TOKEN });
    const first = await relayProcess(polar.url, 0, 60_000);
    const [alice, bob, carol] = devices(first.port, ['alice', 'bob', 'acme_ann']);
    for (const [b, who] of [
      [alice!, 'alice'],
      [bob!, 'bob'],
    ] as const) {
      for (let i = 0; i < 3; i++) await b.track({ name: `${who}-${i}`, externalCustomerId: who });
    }
    // Polar stores the merged batch, then its answer is slow: the relay dies before it comes.
    polar.addFaults({ afterProcessing: true, delayMs: 60_000 });

    const flushes = Promise.all([alice!.flush(), bob!.flush()]);
    await vi.waitFor(() => expect(first.relay.stats().waiting).toBe(2));
    first.clock.advance(60_000);
    await vi.waitFor(() => expect(polar.events).toHaveLength(6));
    await first.kill();
    expect((await flushes).map((r) => r.sent)).toEqual([0, 0]);

    // A third device's new events join the resends in the new relay's windows.
    await carol!.track({ name: 'acme-0', externalCustomerId: 'acme' });
    const second = await relayProcess(polar.url, first.port, 50, false);
    const reports: number[] = [];
    alice!.on('flush', (r) => reports.push(r.duplicates));
    bob!.on('flush', (r) => reports.push(r.duplicates));
    await Promise.all([drain(alice!), drain(bob!), drain(carol!)]);

    expect(polar.events.map((e) => e.name).sort()).toEqual(['acme-0', 'alice-0', 'alice-1', 'alice-2', 'bob-0', 'bob-1', 'bob-2']);
    expect([...polar.countByExternalId().values()].every((n) => n === 1)).toBe(true);
    // Each resent batch was answered as what it is: three duplicates.
    expect(reports.filter((d) => d > 0)).toEqual([3, 3]);
    await second.relay.close();
    await second.kill();
    await Promise.all([alice!.close(), bob!.close(), carol!.close()]);
  });
});
