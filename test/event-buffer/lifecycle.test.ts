import { describe, expect, it } from 'vitest';
import { ClosedError } from '../../src/errors.js';
import { httpTransport } from '../../src/transport/http.js';
import type { Transport } from '../../src/transport/transport.js';
import { freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { bufferFactory, input, ManualClock, readRecords } from './support.js';

const startPolar = useMockPolar();
const make = bufferFactory();

describe('close()', () => {
  it('stops the timers', async () => {
    const clock = new ManualClock();
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), clock, autoFlush: true, flushInterval: 1000 });
    await buffer.track(input(0));
    expect(clock.timers.size).toBeGreaterThan(0);
    await buffer.close();
    expect(clock.timers.size).toBe(0);
  });

  it('lets a running flush finish and settle before it resolves', async () => {
    const server = await startPolar({ latencyMs: 150 });
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const buffer = make(server, { indexedDB: factory, dbName });
    const events = await buffer.trackMany([input(0), input(1), input(2)]);
    const flushing = buffer.flush();
    await server.nextRequest((r) => r.kind === 'ingest').catch(() => undefined);
    const closing = buffer.close();
    expect(await flushing).toMatchObject({ sent: 3 });
    await closing;
    expect(server.events).toHaveLength(3);
    const records = await readRecords(
      factory,
      dbName,
      events.map((e) => e.externalId),
    );
    expect(records.map((r) => r.status)).toEqual(['sent', 'sent', 'sent']);
  });

  it('cuts a backoff wait short and leaves the batch waiting', async () => {
    const server = await startPolar({ faults: [{ status: 503, retryAfter: 60 }] });
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const buffer = make(server, { indexedDB: factory, dbName, retry: { retries: 3, minTimeout: 1, maxTimeout: 120_000, randomize: false } });
    const event = await buffer.track(input(0));
    const flushing = buffer.flush();
    await server.nextRequest((r) => r.kind === 'ingest');
    await new Promise((r) => setTimeout(r, 20));
    await buffer.close();
    expect(await flushing).toMatchObject({ sent: 0, stoppedBy: 'closed' });
    const [record] = await readRecords(factory, dbName, [event.externalId]);
    expect(record).toMatchObject({ status: 'pending', nextAttemptAt: 0 });
  });

  it('makes later calls reject with ClosedError', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB() });
    await buffer.track(input(0));
    await buffer.close();
    await expect(buffer.track(input(1))).rejects.toBeInstanceOf(ClosedError);
    await expect(buffer.trackMany([input(1)])).rejects.toBeInstanceOf(ClosedError);
    await expect(buffer.flush()).rejects.toBeInstanceOf(ClosedError);
    await expect(buffer.stats()).rejects.toBeInstanceOf(ClosedError);
    await expect(buffer.deadLetters()).rejects.toMatchObject({ code: 'closed' });
    await expect(buffer.close()).resolves.toBeUndefined();
  });

  it('keeps what was tracked for the next buffer on the same database', async () => {
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const first = make(undefined, { indexedDB: factory, dbName });
    await first.trackMany([input(0), input(1)]);
    await first.close();
    const second = make(undefined, { indexedDB: factory, dbName });
    expect((await second.stats()).pending).toBe(2);
  });
});

describe('dead letters', () => {
  // Polar takes an empty name today; a name past its 128 characters is what it refuses (422).
  const TOO_LONG = 'x'.repeat(129);
  function rejectingTransport(server: { url: string }, bad: Set<string>): Transport {
    const http = httpTransport({ baseUrl: server.url });
    return {
      ingest: (events, options) =>
        http.ingest(
          events.map((e) => (bad.has(e.external_id) ? { ...e, name: TOO_LONG } : e)),
          options,
        ),
    };
  }

  it('sends a dead letter again after retryDeadLetters()', async () => {
    const server = await startPolar();
    const bad = new Set(['fix-me']);
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), transport: rejectingTransport(server, bad) });
    await buffer.track(input(0, { externalId: 'fix-me' }));
    expect(await buffer.flush()).toMatchObject({ deadLettered: 1 });
    expect((await buffer.deadLetters())[0]?.error).toBeTruthy();
    bad.clear();
    expect(await buffer.retryDeadLetters()).toBe(1);
    expect(await buffer.flush()).toMatchObject({ sent: 1 });
    expect(server.storedExternalIds()).toEqual(['fix-me']);
  });

  it('removes only the named dead letters with purgeDeadLetters(ids)', async () => {
    const server = await startPolar();
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), transport: rejectingTransport(server, new Set(['a', 'b'])) });
    await buffer.trackMany([input(0, { externalId: 'a' }), input(1, { externalId: 'b' })]);
    await buffer.flush();
    expect(await buffer.purgeDeadLetters(['a'])).toBe(1);
    expect((await buffer.deadLetters()).map((e) => e.externalId)).toEqual(['b']);
  });

  it('accounts for every tracked event after a flush through faults', async () => {
    const server = await startPolar({
      faults: [{ status: 503 }, { drop: true, afterProcessing: true }, { status: 500 }, { status: 429, retryAfter: 0 }],
    });
    const bad = new Set<string>();
    const buffer = make(undefined, {
      indexedDB: freshIndexedDB(),
      transport: rejectingTransport(server, bad),
      batchSize: 7,
      retry: { retries: 5, minTimeout: 1, maxTimeout: 20, randomize: false },
    });
    const events = await buffer.trackMany(Array.from({ length: 30 }, (_, i) => input(i)));
    bad.add(events[4]!.externalId);
    bad.add(events[17]!.externalId);
    const report = await buffer.flush();
    const stats = await buffer.stats();
    expect(stats.sent + stats.dead + stats.pending + stats.sending).toBe(30);
    expect(report).toMatchObject({ sent: 28, deadLettered: 2, remaining: 0 });
    expect(server.events).toHaveLength(28);
    expect([...server.countByExternalId().values()].every((n) => n === 1)).toBe(true);
  });
});
