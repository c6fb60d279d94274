import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';
import { createEventBuffer, httpTransport, type EventBuffer } from '../../src/index.js';
import type { MockPolarServer } from '../../src/mock-server/index.js';
import { createRelay, nodeListener, type Relay, type RelayClock, type RelayEvent, type RelayOptions, type RelaySession } from '../../src/relay/index.js';
import { useMockPolar } from '../helpers/mock-server.js';

export const TOKEN = 'polar_oat_relay_test_token';

/** Session tokens a device sends as `Authorization: Bearer <token>`. */
export const SESSIONS: Record<string, RelaySession> = {
  alice: { externalCustomerId: 'alice' },
  bob: { externalCustomerId: 'bob' },
  acme_ann: { externalCustomerId: 'acme', externalMemberIds: ['ann', 'andy'] },
  cus: { customerId: '0b5c4a3e-2f1d-4c6b-9a8e-7d6f5e4c3b2a', memberIds: ['5f0c2a4e-8b1d-4e6f-9a3c-7d2e1b0f4a6c'] },
};

/** A clock whose timers run only when the test advances it (ms <= 0 runs on the next turn). */
export function manualClock(): RelayClock & { advance(ms: number): void; pending(): number } {
  let now = Date.now();
  let seq = 0;
  const timers = new Map<number, { at: number; run: () => void }>();
  return {
    now: () => now,
    setTimeout(run, ms) {
      const id = ++seq;
      if (ms <= 0) {
        timers.set(id, { at: now, run });
        setImmediate(() => {
          if (timers.delete(id)) run();
        });
      } else timers.set(id, { at: now + ms, run });
      return id;
    },
    clearTimeout(id) {
      timers.delete(id as number);
    },
    advance(ms) {
      now += ms;
      for (const [id, t] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (t.at <= now && timers.delete(id)) t.run();
      }
    },
    pending: () => timers.size,
  };
}

export const authenticate = (request: Request) => SESSIONS[/^Bearer (.+)$/.exec(request.headers.get('authorization') ?? '')?.[1] ?? ''] ?? null;

export interface Setup {
  polar: MockPolarServer;
  relay: Relay;
  url: string;
  events: RelayEvent[];
  /** POSTs a batch as the session's device, straight to relay.fetch. */
  post(session: string, events: unknown[]): Promise<{ status: number; body: any; retryAfter: string | null }>;
  /** A real buffer (fake-indexeddb) whose httpTransport points at the relay over HTTP. */
  buffer(session: string, options?: Partial<Parameters<typeof createEventBuffer>[0]>): EventBuffer;
  /** Stops this relay's HTTP server at once (a killed process: open requests get no answer). */
  kill(): Promise<void>;
}

/** A mock Polar, a relay in front of it served by nodeListener on 127.0.0.1, closed after the test. */
export function useRelay(): (
  options?: Partial<RelayOptions> & { mock?: Parameters<ReturnType<typeof useMockPolar>>[0]; polar?: MockPolarServer },
) => Promise<Setup> {
  const startPolar = useMockPolar();
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return async ({ mock, polar: given, ...options } = {}) => {
    const polar = given ?? (await startPolar({ token: TOKEN, registerUnknown: true, ...mock }));
    const events: RelayEvent[] = [];
    const relay = createRelay({ accessToken: TOKEN, authenticate, baseUrl: polar.url, onEvent: (e) => events.push(e), ...options });
    const server: Server = createServer(nodeListener(relay));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    let killed = false;
    const kill = async () => {
      if (killed) return;
      killed = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    };
    const buffers: EventBuffer[] = [];
    cleanups.push(async () => {
      for (const b of buffers) await b.close();
      await relay.close();
      await kill();
    });
    return {
      polar,
      relay,
      url,
      events,
      kill,
      async post(session, batch) {
        const response = await relay.fetch(
          new Request(`${url}/v1/events/ingest`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${session}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ events: batch }),
          }),
        );
        return { status: response.status, body: await response.json(), retryAfter: response.headers.get('retry-after') };
      },
      buffer(session, extra = {}) {
        const b = createEventBuffer({
          transport: httpTransport({ baseUrl: url, headers: () => ({ Authorization: `Bearer ${session}` }) }),
          indexedDB: new IDBFactory(),
          autoFlush: false,
          retry: { retries: 0, minTimeout: 10, maxTimeout: 50 },
          ...extra,
        }) as unknown as EventBuffer;
        buffers.push(b);
        return b;
      },
    };
  };
}

/** The events of each ingest request Polar received. */
export const sentBatches = (polar: MockPolarServer) => polar.ingestRequests().map((r) => (r.body as { events: Record<string, unknown>[] }).events);
