import { describe, expect, it, vi } from 'vitest';
import { object, number } from 'superstruct';
import { createEventBuffer } from '../src/event-buffer.js';
import { resolveOptions } from '../src/options.js';
import { httpTransport } from '../src/transport/http.js';
import { freshIndexedDB } from './helpers/fresh-db.js';
import { useMockPolar } from './helpers/mock-server.js';
import { bufferFactory, input, ManualClock } from './event-buffer/support.js';
import type { FlushReport } from '../src/types.js';

const startPolar = useMockPolar();
const make = bufferFactory();
const transport = { ingest: async () => ({ inserted: 0, duplicates: 0 }) };

describe('option validation', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['transport missing', {}, /`transport`/],
    ['transport without ingest', { transport: {} }, /`transport`/],
    ['transport.list not a function', { transport: { ingest: () => null, list: 1 } }, /transport\.list/],
    ['indexedDB', { transport, indexedDB: {} }, /`indexedDB`/],
    ['dbName', { transport, dbName: '' }, /`dbName`/],
    ['batchSize 0', { transport, batchSize: 0 }, /`batchSize`.*1 to 1000/],
    ['batchSize 1001', { transport, batchSize: 1001 }, /`batchSize`/],
    ['batchSize 1.5', { transport, batchSize: 1.5 }, /`batchSize`/],
    ['flushInterval', { transport, flushInterval: -1 }, /`flushInterval`/],
    ['autoFlush', { transport, autoFlush: 'yes' }, /`autoFlush`/],
    ['retry', { transport, retry: 3 }, /`retry`/],
    ['retry.retries', { transport, retry: { retries: -1 } }, /`retry\.retries`/],
    ['retry.minTimeout', { transport, retry: { minTimeout: 'x' } }, /`retry\.minTimeout`/],
    ['retry.maxTimeout below minTimeout', { transport, retry: { minTimeout: 5000, maxTimeout: 10 } }, /`retry\.maxTimeout`/],
    ['retry.factor', { transport, retry: { factor: 0.5 } }, /`retry\.factor`/],
    ['retry.randomize', { transport, retry: { randomize: 1 } }, /`retry\.randomize`/],
    ['retry unknown key, with the known ones', { transport, retry: { forever: true } }, /`retry\.forever`: expected retries, /],
    ['retry unknown key', { transport, retry: { tries: 3 } }, /`retry\.tries`/],
    ['maxQueueSize', { transport, maxQueueSize: 0 }, /`maxQueueSize`/],
    ['maxBatchBytes', { transport, maxBatchBytes: 100 }, /`maxBatchBytes`/],
    ['leaseDuration', { transport, leaseDuration: 0 }, /`leaseDuration`/],
    ['durability', { transport, durability: 'fast' }, /`durability`/],
    ['schemas', { transport, schemas: [] }, /`schemas`/],
    ['schemas entry', { transport, schemas: { api: 'x' } }, /`schemas\.api`/],
    ['defaults', { transport, defaults: 'u' }, /`defaults`/],
    ['defaults key', { transport, defaults: { customer: 'u' } }, /`defaults\.customer`/],
    ['defaults value', { transport, defaults: { externalCustomerId: '' } }, /`defaults\.externalCustomerId`/],
    ['defaults both customers', { transport, defaults: { externalCustomerId: 'u', customerId: 'c' } }, /defaults\.externalCustomerId.*defaults\.customerId/],
    ['clock', { transport, clock: { now: () => 0 } }, /`clock`/],
    ['unknown option', { transport, batchsize: 10 }, /`batchsize`/],
    ['option of another call', { transport, baseUrl: '/api' }, /`baseUrl`: use httpTransport\(\{ baseUrl \}\)/],
  ];
  for (const [label, options, message] of cases) {
    it(`throws a TypeError naming the option for a wrong ${label}`, () => {
      expect(() => resolveOptions(options as never)).toThrow(TypeError);
      expect(() => resolveOptions(options as never)).toThrow(message);
    });
  }

  it('throws from createEventBuffer itself, before anything is opened', () => {
    expect(() => createEventBuffer({ transport, indexedDB: freshIndexedDB(), batchSize: 0 })).toThrow(TypeError);
  });

  it('applies the documented defaults', () => {
    const o = resolveOptions({ transport });
    expect(o).toMatchObject({
      dbName: 'polar-event-buffer',
      batchSize: 100,
      flushInterval: 5000,
      autoFlush: true,
      maxQueueSize: 10_000,
      leaseDuration: 30_000,
      durability: 'strict',
    });
    expect(o.retry).toMatchObject({ retries: 5, minTimeout: 1000, factor: 2, randomize: true });
    expect(o.maxBatchBytes).toBeLessThanOrEqual(64 * 1024);
  });

  it('accepts retry.retries: Infinity', () => {
    expect(resolveOptions({ transport, retry: { retries: Infinity } }).retry.retries).toBe(Infinity);
  });

  it('accepts a superstruct schema per event name', () => {
    expect(() => resolveOptions({ transport, schemas: { 'llm.call': object({ tokens: number() }) } })).not.toThrow();
  });
});

describe('option effects', () => {
  it('arms no timer with autoFlush: false', async () => {
    const clock = new ManualClock();
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), clock, autoFlush: false });
    await buffer.track(input(0));
    expect(clock.timers.size).toBe(0);
  });

  it('arms no timer with flushInterval: 0', async () => {
    const clock = new ManualClock();
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), clock, autoFlush: true, flushInterval: 0 });
    await buffer.track(input(0));
    expect([...clock.timers.values()].filter((t) => t.ms === 0)).toHaveLength(0);
    expect(clock.timers.size).toBe(0);
  });

  it('flushes on its own every flushInterval ms', async () => {
    const server = await startPolar();
    const clock = new ManualClock();
    const buffer = make(server, { indexedDB: freshIndexedDB(), clock, autoFlush: true, flushInterval: 2500 });
    await buffer.trackMany([input(0), input(1)]);
    expect([...clock.timers.values()].some((t) => t.ms === 2500)).toBe(true);
    clock.advance(2499);
    // Not due yet: the timer is still armed, so no flush has started.
    expect([...clock.timers.values()].map((t) => t.ms)).toContain(2500);
    clock.advance(1);
    await vi.waitFor(async () => expect((await buffer.stats()).sent).toBe(2), { timeout: 10_000 });
    expect(server.events).toHaveLength(2);
    expect(server.ingestRequests()).toHaveLength(1);
  });

  it('flushes on its own once batchSize events are waiting', async () => {
    const server = await startPolar();
    const clock = new ManualClock();
    const buffer = make(server, { indexedDB: freshIndexedDB(), clock, autoFlush: true, flushInterval: 60_000, batchSize: 3 });
    await buffer.trackMany([input(0), input(1)]);
    await buffer.track(input(2));
    await vi.waitFor(async () => expect((await buffer.stats()).sent).toBe(3), { timeout: 10_000 });
    // One request with all three: no flush started while two were waiting.
    expect(server.ingestRequests().map((r) => (r.body as { events: unknown[] }).events.length)).toEqual([3]);
  });

  /** A buffer whose token Polar refuses until the test sets the right one, after its first timer flush got a 401. */
  async function refused() {
    const server = await startPolar({ token: 'polar_oat_right' });
    const clock = new ManualClock();
    const auth = { token: 'polar_oat_wrong' };
    const factory = freshIndexedDB();
    const buffer = make(undefined, {
      indexedDB: factory,
      clock,
      autoFlush: true,
      flushInterval: 1000,
      transport: httpTransport({ baseUrl: server.url, headers: () => ({ Authorization: `Bearer ${auth.token}` }) }),
    });
    const errors: unknown[] = [];
    buffer.on('error', (e) => errors.push(e));
    await buffer.track(input(0));
    const flushed = new Promise<FlushReport>((resolve) => buffer.on('flush', resolve));
    clock.advance(1000);
    // The timer's flush ends with its report: refused, the buffer paused.
    expect(await flushed).toMatchObject({ sent: 0, remaining: 1 });
    await vi.waitFor(() => expect(errors).toHaveLength(1), { timeout: 10_000 });
    expect(server.ingestRequests()).toHaveLength(1);
    expect([...clock.timers.values()].map((t) => t.ms)).toContain(1000);
    return { server, clock, auth, buffer, factory };
  }

  it('pauses automatic flushes after a 401: a timer tick starts none', async () => {
    const { server, clock, buffer } = await refused();
    // Nothing left to send, so a flush the tick started would end without a report of its own.
    await buffer.clear();
    const reports: FlushReport[] = [];
    buffer.on('flush', (report) => reports.push(report));
    clock.advance(1000);
    // flush() joins a flush already running; one it runs itself always reports: the signal.
    await buffer.flush();
    expect(reports).toHaveLength(1);
    expect(server.ingestRequests()).toHaveLength(1);
  });

  it('still tries an explicit flush() while automatic flushes are paused after a 401', async () => {
    const { server, auth, buffer } = await refused();
    auth.token = 'polar_oat_right';
    expect(await buffer.flush()).toMatchObject({ sent: 1 });
    expect(server.ingestRequests()).toHaveLength(2);
    expect(server.events).toHaveLength(1);
  });
});
