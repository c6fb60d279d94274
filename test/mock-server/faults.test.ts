import { describe, expect, it } from 'vitest';
import type { MockPolarServer } from '../../src/mock-server/index.js';
import { useMockPolar } from '../helpers/mock-server.js';

const start = useMockPolar();

const EVENT = { name: 'api.call', external_customer_id: 'u1', external_id: 'e1' };

function post(s: MockPolarServer, events: unknown[] = [EVENT], init: RequestInit = {}): Promise<Response> {
  return fetch(`${s.url}/v1/events/ingest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ events }),
    ...init,
  });
}

describe('mock Polar fault script', () => {
  it('answers a scripted status with a Retry-After in seconds and stores nothing', async () => {
    const s = await start({ faults: [{ status: 429, retryAfter: 7 }] });
    const res = await post(s);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(await res.json()).toEqual({ detail: 'Too Many Requests' });
    expect(s.events).toHaveLength(0);
    expect((await post(s)).status).toBe(200);
  });

  it('sends a Retry-After HTTP date as given', async () => {
    const when = new Date(Date.now() + 5000).toUTCString();
    const s = await start({ faults: [{ status: 503, retryAfter: when }] });
    const res = await post(s);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe(when);
  });

  it('sends a string body raw, for HTML error pages or malformed JSON', async () => {
    const s = await start({ faults: [{ status: 502, body: '<html>Bad gateway</html>', headers: { 'Content-Type': 'text/html' } }] });
    const res = await post(s);
    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).toBe('text/html');
    expect(await res.text()).toBe('<html>Bad gateway</html>');
  });

  it('applies a fault as many times as its times field says', async () => {
    const s = await start();
    s.addFaults({ status: 500, times: 2 });
    expect((await post(s)).status).toBe(500);
    expect(s.pendingFaults[0]?.times).toBe(1);
    expect((await post(s)).status).toBe(500);
    expect((await post(s)).status).toBe(200);
  });

  it('consumes faults in order', async () => {
    const s = await start();
    s.addFaults({ status: 500 }, { status: 503 });
    expect((await post(s)).status).toBe(500);
    expect((await post(s)).status).toBe(503);
    expect((await post(s)).status).toBe(200);
  });

  it('applies an ingest fault only to ingest requests and a list fault only to list requests', async () => {
    const s = await start();
    s.addFaults({ match: 'list', status: 503 });
    expect((await post(s)).status).toBe(200);
    expect((await fetch(`${s.url}/v1/events/`)).status).toBe(503);
    s.addFaults({ status: 500 });
    expect((await fetch(`${s.url}/v1/events/`)).status).toBe(200);
    expect((await post(s, [{ ...EVENT, external_id: 'e2' }])).status).toBe(500);
  });

  it('applies an any fault to whatever request comes next', async () => {
    const s = await start({ faults: [{ match: 'any', status: 418 }] });
    expect((await fetch(`${s.url}/v1/events/`)).status).toBe(418);
    expect((await fetch(`${s.url}/v1/events/`)).status).toBe(200);
  });

  it('drops the connection without answering and stores nothing', async () => {
    const s = await start({ faults: [{ drop: true }] });
    await expect(post(s)).rejects.toThrow();
    expect(s.events).toHaveLength(0);
    expect(s.requests[0]?.status).toBeNull();
    expect((await post(s)).status).toBe(200);
  });

  it('stores the events before dropping when afterProcessing is set', async () => {
    const s = await start({ faults: [{ drop: true, afterProcessing: true }] });
    await expect(post(s)).rejects.toThrow();
    expect(s.storedExternalIds()).toEqual(['e1']);
    const res = await post(s);
    expect(await res.json()).toEqual({ inserted: 0, duplicates: 1 });
    expect(s.countByExternalId().get('e1')).toBe(1);
  });

  it('stores the events and then answers the scripted status when afterProcessing is set with a status', async () => {
    const s = await start({ faults: [{ status: 504, afterProcessing: true }] });
    expect((await post(s)).status).toBe(504);
    expect(s.events).toHaveLength(1);
  });

  it('delays the answer by delayMs', async () => {
    const s = await start({ faults: [{ delayMs: 200 }] });
    const t0 = Date.now();
    const res = await post(s);
    expect(res.status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
  });

  it('abandons a delayed request whose client gave up, storing nothing', async () => {
    const s = await start({ faults: [{ delayMs: 300 }] });
    const done = s.nextRequest();
    await expect(post(s, [EVENT], { signal: AbortSignal.timeout(50) })).rejects.toThrow();
    const r = await done;
    expect(r.status).toBeNull();
    expect(s.events).toHaveLength(0);
  });

  it('delays and then drops when both are scripted', async () => {
    const s = await start({ faults: [{ delayMs: 150, drop: true }] });
    const t0 = Date.now();
    await expect(post(s)).rejects.toThrow();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });

  it('delays every answer by latencyMs', async () => {
    const s = await start({ latencyMs: 120 });
    const t0 = Date.now();
    await fetch(`${s.url}/v1/events/`);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(110);
  });

  it('forgets pending faults on clearFaults', async () => {
    const s = await start({ faults: [{ status: 500, times: 5 }] });
    s.clearFaults();
    expect((await post(s)).status).toBe(200);
  });

  it('applies a fault before checking the token', async () => {
    const s = await start({ token: 't', faults: [{ status: 503 }] });
    expect((await post(s)).status).toBe(503);
    expect((await post(s)).status).toBe(401);
  });
});

describe('mock Polar network behaviour', () => {
  it('sends a Date header from the server clock on every response, errors included', async () => {
    const s = await start({ clockOffsetMs: 3_600_000, token: 't', faults: [{ status: 500 }] });
    const responses = [
      await post(s),
      await post(s),
      await fetch(`${s.url}/v1/nowhere`),
      await fetch(`${s.url}/v1/events/`, { headers: { authorization: 'Bearer t' } }),
    ];
    for (const res of responses) {
      const date = res.headers.get('date');
      expect(date).not.toBeNull();
      expect(Math.abs(Date.parse(date!) - (Date.now() + 3_600_000))).toBeLessThan(5_000);
      expect(res.headers.get('content-type')).toBe('application/json');
    }
  });

  it('destroys every connection while offline and answers again once back online', async () => {
    const s = await start();
    await fetch(`${s.url}/v1/events/`);
    s.setOnline(false);
    await expect(post(s)).rejects.toThrow();
    await expect(fetch(`${s.url}/v1/events/`)).rejects.toThrow();
    expect(s.events).toHaveLength(0);
    s.setOnline(true);
    expect((await post(s)).status).toBe(200);
  });

  it('closes even while a request is being delayed', async () => {
    const s = await start({ faults: [{ delayMs: 60_000 }] });
    const pending = post(s).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    await s.close();
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(await pending).toBeInstanceOf(Error);
  });

  it('binds 127.0.0.1 on an ephemeral port by default', async () => {
    const s = await start();
    expect(s.url).toBe(`http://127.0.0.1:${s.port}`);
    expect(s.port).toBeGreaterThan(0);
  });
});
