/**
 * Suite 3: bad answers from the server. Malformed JSON, an HTML error page, a 200 with the wrong
 * shape, an enormous body, a list page with invalid items, a Retry-After of a year: nothing is lost
 * or corrupted, waits are capped (retry.maxRetryAfter), and each is reported through "error".
 */
import { describe, expect, test } from 'vitest';
import { createEventBuffer } from '../../src/event-buffer.js';
import { isPolarEventBufferError } from '../../src/errors.js';
import { createMirror } from '../../src/mirror/index.js';
import type { Fault, MockPolarServer } from '../../src/mock-server/index.js';
import { httpTransport } from '../../src/transport/http.js';
import type { BufferedEvent, EventBuffer } from '../../src/types.js';
import { autoClose, freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';

const TOKEN = 'answers-token';
const startServer = useMockPolar();
const closeLater = autoClose();

interface Setup {
  server: MockPolarServer;
  buffer: EventBuffer;
  errors: unknown[];
  clock: { offset: number };
  tracked: BufferedEvent[];
}

async function setup(events = 5, options: { maxRetryAfter?: number } = {}): Promise<Setup> {
  const server = await startServer({ token: TOKEN });
  const clock = { offset: 0 };
  const buffer = createEventBuffer({
    transport: httpTransport({ baseUrl: server.url, headers: () => ({ Authorization: `Bearer ${TOKEN}` }), timeout: 2_000 }),
    indexedDB: freshIndexedDB(),
    autoFlush: false,
    retry: {
      retries: 1,
      minTimeout: 1,
      maxTimeout: 10,
      randomize: false,
      ...(options.maxRetryAfter === undefined ? {} : { maxRetryAfter: options.maxRetryAfter }),
    },
    clock: {
      now: () => Date.now() + clock.offset,
      setTimeout: (cb, ms) => setTimeout(cb, ms),
      clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
    },
  }) as unknown as EventBuffer;
  closeLater(buffer);
  const errors: unknown[] = [];
  buffer.on('error', (e) => errors.push(e));
  const tracked = await buffer.trackMany(
    Array.from({ length: events }, (_, i) => ({ name: 'api_call', externalCustomerId: `cust_${i % 2}`, metadata: { i, note: `é${i}` } })) as never,
  );
  return { server, buffer, errors, clock, tracked };
}

/**
 * Every tracked event reached the server in a request it accepted, under its own external_id (so
 * the server stores it once however often it was sent), unchanged; nothing waits or is dead.
 */
async function expectDeliveredOnce({ server, buffer, tracked }: Setup): Promise<void> {
  const accepted = new Set(
    server
      .ingestRequests()
      .filter((r) => r.status === 200)
      .flatMap((r) => ((r.body as { events?: { external_id: string }[] } | undefined)?.events ?? []).map((e) => e.external_id)),
  );
  expect(tracked.filter((e) => !accepted.has(e.externalId))).toEqual([]);
  const byId = new Map(server.stored().map((s) => [s.externalId, s.event]));
  for (const e of tracked) {
    expect(byId.get(e.externalId)?.metadata).toEqual(e.metadata);
    expect(byId.get(e.externalId)?.name).toBe(e.name);
  }
  const stats = await buffer.stats();
  expect({ pending: stats.pending, sending: stats.sending, dead: stats.dead, sent: stats.sent + stats.confirmed }).toEqual({
    pending: 0,
    sending: 0,
    dead: 0,
    sent: tracked.length,
  });
}

/** Fails the batch once with `fault` (after the server stored it when `afterProcessing`), then heals. */
async function failOnceThenHeal(s: Setup, fault: Fault): Promise<void> {
  s.server.addFaults({ ...fault, times: 5 });
  const first = await s.buffer.flush();
  expect(first.sent).toBe(0);
  s.server.clearFaults();
  s.clock.offset += 60_000; // past any backoff kept with the events
  await s.buffer.flush();
}

describe('bad answers from the server', () => {
  test('a 200 with malformed JSON after the server stored the batch is reported through "error", and the resend is stored once', async () => {
    const s = await setup();
    await failOnceThenHeal(s, { status: 200, body: '{"inserted": 5, "dupl', afterProcessing: true });
    expect(s.errors.length).toBeGreaterThan(0);
    expect(s.errors.every(isPolarEventBufferError)).toBe(true);
    expect(String((s.errors[0] as Error).message)).toMatch(/not JSON/);
    await expectDeliveredOnce(s);
  });

  test('an HTML error page (502) is reported through "error", nothing is dead-lettered, and the next flush delivers every event once', async () => {
    const s = await setup();
    await failOnceThenHeal(s, {
      status: 502,
      body: '<!doctype html><html><body><h1>502 Bad Gateway</h1></body></html>',
      headers: { 'Content-Type': 'text/html' },
    });
    expect(s.errors.length).toBeGreaterThan(0);
    expect((s.errors[0] as { status?: number }).status).toBe(502);
    await expectDeliveredOnce(s);
  });

  test('a 200 with the wrong shape after the server stored the batch is reported through "error", and the resend is stored once', async () => {
    const s = await setup();
    await failOnceThenHeal(s, { status: 200, body: { ok: true, events: 'accepted' }, afterProcessing: true });
    expect(s.errors.some((e) => /without \{"inserted"/.test(String((e as Error).message)))).toBe(true);
    await expectDeliveredOnce(s);
  });

  test('an enormous answer body (6 MB) is refused past maxResponseBytes, reported through "error", and nothing is lost', async () => {
    const s = await setup();
    await failOnceThenHeal(s, { status: 200, body: `{"inserted": 5, "pad": "${'x'.repeat(6_000_000)}"}`, afterProcessing: true });
    expect(s.errors.some((e) => /over \d+ bytes/.test(String((e as Error).message)))).toBe(true);
    await expectDeliveredOnce(s);
  });

  test('a Retry-After of a year (in seconds) is capped at retry.maxRetryAfter: the events are due again once the cap has passed', async () => {
    const cap = 120_000;
    const s = await setup(5, { maxRetryAfter: cap });
    s.server.addFaults({ status: 429, retryAfter: 365 * 24 * 3600 });
    const first = await s.buffer.flush();
    expect(first.stoppedBy).toBe('retry-after');
    expect(s.errors.length).toBe(1);
    s.clock.offset += cap - 5_000;
    const early = await s.buffer.flush();
    expect(early.sent).toBe(0);
    s.clock.offset += 10_000;
    const due = await s.buffer.flush();
    expect(due.sent).toBe(5);
    await expectDeliveredOnce(s);
  });

  test('a Retry-After of a year as an HTTP date is capped at the default retry.maxRetryAfter (15 minutes)', async () => {
    const s = await setup(3);
    s.server.addFaults({ status: 503, retryAfter: new Date(Date.now() + 365 * 24 * 3600 * 1000).toUTCString() });
    expect((await s.buffer.flush()).stoppedBy).toBe('retry-after');
    s.clock.offset += 15 * 60_000 - 5_000;
    expect((await s.buffer.flush()).sent).toBe(0);
    s.clock.offset += 10_000;
    expect((await s.buffer.flush()).sent).toBe(3);
    expect(s.errors.length).toBe(1);
    await expectDeliveredOnce(s);
  });

  test('a list page with invalid items: reconcile skips and reports each through "error", mirrors the valid ones, and the queue stays intact', async () => {
    const s = await setup(4);
    await s.buffer.flush();
    const valid = s.server.events;
    const invalid = [{ id: 42 }, { ...valid[0], timestamp: 'yesterday', id: '7d0f6c52-2b8e-4d7b-9f0a-3c1e5a9b8d70' }, 'not an event', null];
    s.server.addFaults({
      match: 'list',
      status: 200,
      body: { items: [...valid, ...invalid], pagination: { total_count: valid.length + invalid.length, max_page: 1 } },
    });
    const mirror = createMirror(s.buffer);
    mirror.on('error', (e) => s.errors.push(e));
    const report = await mirror.reconcile();
    expect(report.invalid).toBe(invalid.length);
    expect(s.errors.filter(isPolarEventBufferError).length).toBe(invalid.length);
    const stats = await s.buffer.stats();
    expect(stats.mirrored).toBe(valid.length);
    expect(stats.confirmed + stats.sent).toBe(4);
    expect(stats.pending + stats.sending + stats.dead).toBe(0);
    await expectDeliveredOnce(s);
  });
});
