import { describe, expect, it } from 'vitest';
import { TransportError } from '../../src/errors.js';
import { httpTransport, parseRetryAfter } from '../../src/transport/http.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { WIRE_TIME } from '../event-buffer/support.js';

const startPolar = useMockPolar();

const EVENT = {
  name: 'api.call',
  external_customer_id: 'user_42',
  timestamp: WIRE_TIME,
  external_id: '0190b0c0-0000-7000-8000-0000000000aa',
  metadata: { tokens: 12 },
};

function signal() {
  return new AbortController().signal;
}

async function failure(promise: Promise<unknown>): Promise<TransportError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TransportError);
  return error as TransportError;
}

describe('httpTransport', () => {
  it('posts events to /v1/events/ingest and returns the counts and the server Date', async () => {
    const server = await startPolar();
    const transport = httpTransport({ baseUrl: `${server.url}/` });
    const result = await transport.ingest([EVENT], { signal: signal() });
    expect(result).toMatchObject({ inserted: 1, duplicates: 0 });
    expect(result.serverDate).toBeInstanceOf(Date);
    const again = await transport.ingest([EVENT], { signal: signal() });
    expect(again).toMatchObject({ inserted: 0, duplicates: 1 });
    expect(server.ingestRequests()[0]!.body).toEqual({ events: [EVENT] });
  });

  it('sends the body as UTF-8 JSON bytes built event by event: exactly {"events": [...]} for any text, and for no event', async () => {
    const bodies: unknown[] = [];
    const fetch = async (_url: string | URL | Request, init?: RequestInit) => {
      bodies.push(init?.body);
      return new Response('{"inserted": 1, "duplicates": 0}', { status: 200, headers: { date: new Date().toUTCString() } });
    };
    const transport = httpTransport({ baseUrl: 'http://127.0.0.1:9', fetch });
    const events = [
      { ...EVENT, metadata: { text: 'café ünïcödé 東京 🚀 "quoted" \\ back\nline', n: 1.5 } },
      { ...EVENT, external_id: '0190b0c0-0000-7000-8000-0000000000ab', metadata: { empty: false } },
    ];
    await transport.ingest(events, { signal: signal() });
    await transport.ingest([], { signal: signal() });
    expect(bodies.every((b) => b instanceof Uint8Array)).toBe(true);
    const [many, none] = bodies as Uint8Array[];
    expect(Buffer.from(many!).toString('utf8')).toBe(JSON.stringify({ events }));
    expect(Buffer.from(none!).toString('utf8')).toBe('{"events":[]}');
  });

  it('calls headers() for every request and never reuses a token', async () => {
    const server = await startPolar();
    let calls = 0;
    const transport = httpTransport({ baseUrl: server.url, headers: () => ({ Authorization: `Bearer polar_oat_${++calls}` }) });
    await transport.ingest([EVENT], { signal: signal() });
    await transport.ingest([EVENT], { signal: signal() });
    expect(calls).toBe(2);
    expect(server.ingestRequests().map((r) => r.headers.authorization)).toEqual(['Bearer polar_oat_1', 'Bearer polar_oat_2']);
  });

  it('awaits an async headers() function', async () => {
    const server = await startPolar({ token: 'polar_oat_async' });
    const transport = httpTransport({ baseUrl: server.url, headers: async () => ({ Authorization: 'Bearer polar_oat_async' }) });
    await expect(transport.ingest([EVENT], { signal: signal() })).resolves.toMatchObject({ inserted: 1 });
  });

  it('rejects a 422 with a TransportError carrying status, parsed detail and serverDate', async () => {
    const server = await startPolar();
    // Polar takes an empty name today; a name past its 128 characters is a 422.
    const error = await failure(httpTransport({ baseUrl: server.url }).ingest([{ ...EVENT, name: 'x'.repeat(129) }], { signal: signal() }));
    expect(error.status).toBe(422);
    expect(error.detail?.length).toBeGreaterThan(0);
    expect(error.detail!.every((d) => d.loc[0] === 'body' && d.loc[1] === 'events' && d.loc[2] === 0)).toBe(true);
    expect(error.serverDate).toBeInstanceOf(Date);
    expect(error.code).toBe('transport');
  });

  it('rejects a 429 with retryAfter in milliseconds', async () => {
    const server = await startPolar({ faults: [{ status: 429, retryAfter: 7 }] });
    const error = await failure(httpTransport({ baseUrl: server.url }).ingest([EVENT], { signal: signal() }));
    expect(error.status).toBe(429);
    expect(error.retryAfter).toBe(7000);
  });

  it('measures a Retry-After HTTP date against the server Date', async () => {
    const server = await startPolar({ clockOffsetMs: -3_600_000 });
    server.addFaults({ status: 503, retryAfter: new Date(server.now().getTime() + 10_000).toUTCString() });
    const error = await failure(httpTransport({ baseUrl: server.url }).ingest([EVENT], { signal: signal() }));
    expect(error.status).toBe(503);
    expect(error.retryAfter).toBeGreaterThanOrEqual(9000);
    expect(error.retryAfter).toBeLessThanOrEqual(11_000);
  });

  it('rejects a 401 with a message about the token', async () => {
    const server = await startPolar({ token: 'polar_oat_right' });
    const error = await failure(
      httpTransport({ baseUrl: server.url, headers: () => ({ Authorization: 'Bearer nope' }) }).ingest([EVENT], { signal: signal() }),
    );
    expect(error.status).toBe(401);
    expect(error.message).toMatch(/token/);
  });

  it('rejects an HTML error page with its status', async () => {
    const server = await startPolar({ faults: [{ status: 502, body: '<html><body>Bad gateway</body></html>', headers: { 'Content-Type': 'text/html' } }] });
    const error = await failure(httpTransport({ baseUrl: server.url }).ingest([EVENT], { signal: signal() }));
    expect(error.status).toBe(502);
    expect(error.message).toContain('Bad gateway');
  });

  it('rejects a 200 whose body is not JSON', async () => {
    const server = await startPolar({ faults: [{ status: 200, body: '{"inserted": 1,' }] });
    const error = await failure(httpTransport({ baseUrl: server.url }).ingest([EVENT], { signal: signal() }));
    expect(error.message).toMatch(/not JSON/);
  });

  it('rejects a 200 without the {inserted, duplicates} shape', async () => {
    const server = await startPolar({ faults: [{ status: 200, body: { ok: true } }] });
    const error = await failure(httpTransport({ baseUrl: server.url }).ingest([EVENT], { signal: signal() }));
    expect(error.message).toMatch(/inserted/);
  });

  it('rejects a dropped connection as status 0', async () => {
    const server = await startPolar({ faults: [{ drop: true }] });
    const error = await failure(httpTransport({ baseUrl: server.url }).ingest([EVENT], { signal: signal() }));
    expect(error.status).toBe(0);
    expect(error.cause).toBeDefined();
  });

  it('rejects with status 0 when no answer comes within timeout', async () => {
    const server = await startPolar({ faults: [{ delayMs: 1000 }] });
    const error = await failure(httpTransport({ baseUrl: server.url, timeout: 50 }).ingest([EVENT], { signal: signal() }));
    expect(error.status).toBe(0);
    expect(error.message).toMatch(/timeout/);
  });

  it('lists events with the query as URL parameters', async () => {
    const server = await startPolar();
    const transport = httpTransport({ baseUrl: server.url });
    await transport.ingest([EVENT], { signal: signal() });
    const page = await transport.list!({ external_customer_id: 'user_42', page: 1, limit: 100, sorting: 'timestamp' }, { signal: signal() });
    expect(page.items).toHaveLength(1);
    expect(page.pagination.total_count).toBe(1);
    const request = server.requests.find((r) => r.kind === 'list')!;
    expect(request.query).toMatchObject({ external_customer_id: 'user_42', page: '1', limit: '100', sorting: 'timestamp' });
  });

  it('checks its options up front', () => {
    expect(() => httpTransport({ baseUrl: '' })).toThrow(/baseUrl/);
    expect(() => httpTransport({ baseUrl: 'http://x', headers: {} as never })).toThrow(/headers/);
    expect(() => httpTransport({ baseUrl: 'http://x', timeout: 0 })).toThrow(/timeout/);
    expect(() => httpTransport({ baseUrl: 'http://x', fetch: 'no' as never })).toThrow(/fetch/);
  });
});

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP dates, and ignores garbage', () => {
    const serverDate = new Date('Mon, 02 Jun 2025 09:15:27 GMT');
    expect(parseRetryAfter('120', serverDate)).toBe(120_000);
    expect(parseRetryAfter('Mon, 02 Jun 2025 09:15:57 GMT', serverDate)).toBe(30_000);
    expect(parseRetryAfter('Mon, 02 Jun 2025 09:15:00 GMT', serverDate)).toBe(0);
    expect(parseRetryAfter('soon', serverDate)).toBeUndefined();
    expect(parseRetryAfter(null, serverDate)).toBeUndefined();
  });
});
