import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, test } from 'vitest';
import { createRelay, nodeListener } from '../../src/relay/index.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { TOKEN, authenticate } from './support.js';

const startPolar = useMockPolar();

describe('serving the relay', () => {
  test('a fetch-style runtime calls relay.fetch(request) under its prefix and gets a Web Response', async () => {
    const polar = await startPolar({ token: TOKEN });
    const relay = createRelay({ accessToken: TOKEN, authenticate, baseUrl: polar.url, prefix: '/api/usage', window: 0 });
    // What a Next.js route handler, Hono or a Worker export amounts to.
    const POST = (request: Request) => relay.fetch(request);

    const response = await POST(
      new Request('https://app.example/api/usage/v1/events/ingest', {
        method: 'POST',
        headers: { Authorization: 'Bearer alice', 'Content-Type': 'application/json' },
        body: JSON.stringify({ events: [{ name: 'api_call', metadata: { tokens: 3 } }] }),
      }),
    );
    const outside = await POST(new Request('https://app.example/v1/events/ingest', { method: 'POST', headers: { Authorization: 'Bearer alice' }, body: '{}' }));

    expect(response).toBeInstanceOf(Response);
    expect([response.status, response.headers.get('content-type'), await response.json()]).toEqual([200, 'application/json', { inserted: 1, duplicates: 0 }]);
    expect(outside.status).toBe(404);
    expect(polar.events.map((e) => [e.name, e.external_customer_id, e.metadata])).toEqual([['api_call', 'alice', { tokens: 3 }]]);
    await relay.close();
  });

  test('nodeListener mounts it in node:http: streamed bodies, statuses and Retry-After come through', async () => {
    const polar = await startPolar({ token: TOKEN });
    const relay = createRelay({ accessToken: TOKEN, authenticate, baseUrl: polar.url, prefix: '/usage', window: 0, maxBodyBytes: 64_000 });
    const server = createServer(nodeListener(relay));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/usage`;
    const post = (body: string) =>
      fetch(`${base}/v1/events/ingest`, { method: 'POST', headers: { Authorization: 'Bearer bob', 'Content-Type': 'application/json' }, body });
    try {
      const events = Array.from({ length: 200 }, (_, i) => ({ name: 'api_call', metadata: { i, note: 'n'.repeat(100) } }));
      const ok = await post(JSON.stringify({ events }));
      const large = await post(JSON.stringify({ events: [...events, ...events, ...events] }));
      polar.addFaults({ status: 503, retryAfter: 4 });
      const busy = await post(JSON.stringify({ events: [{ name: 'x' }] }));

      expect([ok.status, await ok.json()]).toEqual([200, { inserted: 200, duplicates: 0 }]);
      expect(large.status).toBe(413);
      expect([busy.status, busy.headers.get('retry-after')]).toEqual([503, '4']);
      expect(polar.events).toHaveLength(200);
    } finally {
      await relay.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
