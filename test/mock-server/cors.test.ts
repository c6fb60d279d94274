// Polar's CORS for its public API (polarsource/polar server/polar/app.py `configure_cors`,
// kit/cors.py, Starlette's CORSMiddleware): any origin, no credentials, only Polar-Version exposed.
import { afterEach, describe, expect, it } from 'vitest';
import { startMockPolar, type MockPolarServer } from '../../src/mock-server/index.js';

let server: MockPolarServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const ORIGIN = 'http://127.0.0.1:5999';

function preflight(s: MockPolarServer, headers = 'content-type, authorization'): Promise<Response> {
  return fetch(`${s.url}/v1/events/ingest`, {
    method: 'OPTIONS',
    headers: { Origin: ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': headers },
  });
}

describe("mock Polar CORS, Polar's by default", () => {
  it('answers a preflight with 200 "OK" and Polar allow headers, without recording it', async () => {
    server = await startMockPolar();
    const res = await preflight(server);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('OK');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-methods')).toBe('DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT');
    expect(res.headers.get('access-control-allow-headers')).toBe('Accept, Accept-Language, Authorization, Content-Language, Content-Type, Polar-Version');
    expect(res.headers.get('access-control-max-age')).toBe('600');
    expect(server.requests).toHaveLength(0);
  });

  it('refuses a preflight asking for a header Polar does not allow', async () => {
    server = await startMockPolar();
    const res = await preflight(server, 'x-device-id');
    expect(res.status).toBe(400);
    expect(await res.text()).toBe('Disallowed CORS headers');
  });

  it('lets a page read answers but exposes neither Date nor Retry-After, errors included', async () => {
    server = await startMockPolar({ faults: [{ status: 429, retryAfter: 1 }] });
    const init = {
      method: 'POST',
      headers: { Origin: ORIGIN, 'Content-Type': 'application/json' },
      body: JSON.stringify({ events: [{ name: 'a', external_customer_id: 'u', external_id: 'x1' }] }),
    };
    const refused = await fetch(`${server.url}/v1/events/ingest`, init);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
    expect(refused.headers.get('access-control-expose-headers')).toBe('Polar-Version');
    const accepted = await fetch(`${server.url}/v1/events/ingest`, init);
    expect(accepted.status).toBe(200);
    expect(accepted.headers.get('access-control-expose-headers')).toBe('Polar-Version');
    expect(server.countByExternalId().get('x1')).toBe(1);
  });

  it('adds nothing to a request without Origin', async () => {
    server = await startMockPolar();
    const res = await fetch(`${server.url}/v1/events/`);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('sends no CORS headers and treats OPTIONS as a wrong method with cors: false', async () => {
    server = await startMockPolar({ cors: false });
    const res = await preflight(server);
    expect(res.status).toBe(405);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});
