import { afterEach, describe, expect, it } from 'vitest';
import { startMockPolar, type MockPolarServer } from '../../src/mock-server/index.js';

let server: MockPolarServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const ORIGIN = 'http://127.0.0.1:5999';

function preflight(s: MockPolarServer): Promise<Response> {
  return fetch(`${s.url}/v1/events/ingest`, {
    method: 'OPTIONS',
    headers: { Origin: ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
  });
}

describe('mock Polar CORS option', () => {
  it('answers a preflight with 204 and the allow headers when cors is on, without recording it', async () => {
    server = await startMockPolar({ cors: true });
    const res = await preflight(server);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    expect(res.headers.get('access-control-allow-headers')).toBe('content-type');
    expect(server.requests).toHaveLength(0);
  });

  it('adds the allow-origin header to real answers and exposes Date and Retry-After', async () => {
    server = await startMockPolar({ cors: true, faults: [{ status: 429, retryAfter: 1 }] });
    const init = {
      method: 'POST',
      headers: { Origin: ORIGIN, 'Content-Type': 'application/json' },
      body: JSON.stringify({ events: [{ name: 'a', external_customer_id: 'u', external_id: 'x1' }] }),
    };
    const refused = await fetch(`${server.url}/v1/events/ingest`, init);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(refused.headers.get('access-control-expose-headers')).toBe('Date, Retry-After');
    const accepted = await fetch(`${server.url}/v1/events/ingest`, init);
    expect(accepted.status).toBe(200);
    expect(accepted.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(server.countByExternalId().get('x1')).toBe(1);
  });

  it('sends no CORS headers and treats OPTIONS as a wrong method when cors is off', async () => {
    server = await startMockPolar();
    const res = await preflight(server);
    expect(res.status).toBe(405);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});
