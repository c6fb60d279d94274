import { describe, expect, it } from 'vitest';
import { TransportError } from '../../src/errors.js';
import { httpTransport } from '../../src/transport/http.js';
import type { Transport } from '../../src/transport/transport.js';
import type { MockPolarServer } from '../../src/mock-server/index.js';
import { freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { bufferFactory, input, JumpClock, readRecords } from '../event-buffer/support.js';

const startPolar = useMockPolar();
const make = bufferFactory();

/** The mock server's transport, noting the buffer clock's time of every request. */
function timedTransport(server: MockPolarServer, clock: { now(): number }, timeout = 5000): Transport & { times: number[] } {
  const http = httpTransport({ baseUrl: server.url, timeout });
  const times: number[] = [];
  return {
    times,
    ingest(events, options) {
      times.push(clock.now());
      return http.ingest(events, options);
    },
  };
}

describe('retry', () => {
  it('retries a 5xx and sends the batch once the server recovers', async () => {
    const server = await startPolar({ faults: [{ status: 500, times: 2 }] });
    const buffer = make(server, { indexedDB: freshIndexedDB() });
    await buffer.trackMany([input(0), input(1)]);
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 2, remaining: 0, requests: 3 });
    expect(server.ingestRequests().map((r) => r.status)).toEqual([500, 500, 200]);
    expect(server.events).toHaveLength(2);
  });

  it('waits the Retry-After seconds of a 503 before the next request', async () => {
    const server = await startPolar({ faults: [{ status: 503, retryAfter: 3 }] });
    const clock = new JumpClock();
    const transport = timedTransport(server, clock);
    const buffer = make(undefined, {
      indexedDB: freshIndexedDB(),
      transport,
      clock,
      leaseDuration: 120_000,
      retry: { retries: 2, minTimeout: 1, maxTimeout: 10_000, randomize: false },
    });
    await buffer.track(input(0));
    expect(await buffer.flush()).toMatchObject({ sent: 1 });
    expect(transport.times).toHaveLength(2);
    expect(transport.times[1]! - transport.times[0]!).toBeGreaterThanOrEqual(3000);
  });

  it('waits until the Retry-After HTTP date of a 429 before the next request', async () => {
    const server = await startPolar();
    server.addFaults({ status: 429, retryAfter: new Date(server.now().getTime() + 4000).toUTCString() });
    const clock = new JumpClock();
    const transport = timedTransport(server, clock);
    const buffer = make(undefined, {
      indexedDB: freshIndexedDB(),
      transport,
      clock,
      leaseDuration: 120_000,
      retry: { retries: 2, minTimeout: 1, maxTimeout: 10_000, randomize: false },
    });
    await buffer.track(input(0));
    expect(await buffer.flush()).toMatchObject({ sent: 1 });
    expect(transport.times).toHaveLength(2);
    // An HTTP date has whole seconds: 4 s from now is at least 3 s away.
    expect(transport.times[1]! - transport.times[0]!).toBeGreaterThanOrEqual(3000);
  });

  it('ends the flush on a Retry-After longer than retry.maxTimeout and keeps the wait with the events', async () => {
    const server = await startPolar({ faults: [{ status: 503, retryAfter: 120 }] });
    const clock = new JumpClock();
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const transport = timedTransport(server, clock);
    const buffer = make(undefined, {
      indexedDB: factory,
      dbName,
      transport,
      clock,
      leaseDuration: 120_000,
      retry: { retries: 5, minTimeout: 1, maxTimeout: 5000, randomize: false },
    });
    const event = await buffer.track(input(0));
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 0, remaining: 1, stoppedBy: 'retry-after' });
    expect(transport.times).toHaveLength(1);
    const [record] = await readRecords(factory, dbName, [event.externalId]);
    expect(record).toMatchObject({ status: 'pending' });
    expect(record!.nextAttemptAt - clock.now()).toBeGreaterThanOrEqual(119_000);
    expect(await buffer.flush()).toMatchObject({ sent: 0 });
    expect(transport.times).toHaveLength(1);
  });

  it('keeps a Retry-After as the earliest next attempt when retries run out before it', async () => {
    const server = await startPolar({ faults: [{ status: 429, retryAfter: 20 }] });
    const clock = new JumpClock();
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const buffer = make(server, {
      indexedDB: factory,
      dbName,
      clock,
      leaseDuration: 120_000,
      retry: { retries: 0, minTimeout: 1000, maxTimeout: 30_000, randomize: false },
    });
    const event = await buffer.track(input(0));
    expect(await buffer.flush()).toMatchObject({ sent: 0, remaining: 1 });
    const [record] = await readRecords(factory, dbName, [event.externalId]);
    expect(record!.nextAttemptAt - clock.now()).toBeGreaterThanOrEqual(20_000);
  });

  it('counts a request that gets no answer within the transport timeout as a retryable failure', async () => {
    const server = await startPolar({ faults: [{ delayMs: 2000 }] });
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), transport: httpTransport({ baseUrl: server.url, timeout: 100 }) });
    const errors: unknown[] = [];
    buffer.on('error', (e) => errors.push(e));
    await buffer.track(input(0));
    expect(await buffer.flush()).toMatchObject({ sent: 1 });
    expect(server.ingestRequests()).toHaveLength(2);
    expect(errors.some((e) => e instanceof TransportError && e.status === 0 && /timeout/.test(e.message))).toBe(true);
    expect(server.events).toHaveLength(1);
  });

  it('keeps events pending with attempts and nextAttemptAt in IndexedDB when retries run out, and a new buffer waits for it', async () => {
    const server = await startPolar({ faults: [{ status: 502, times: 1 }] });
    const clock = new JumpClock();
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const retry = { retries: 0, minTimeout: 1000, maxTimeout: 8000, randomize: false };
    const first = make(undefined, { indexedDB: factory, dbName, clock, leaseDuration: 120_000, retry, transport: timedTransport(server, clock) });
    const event = await first.track(input(0));
    expect(await first.flush()).toMatchObject({ sent: 0, remaining: 1, stoppedBy: 'retries-exhausted' });
    await first.close();
    const [record] = await readRecords(factory, dbName, [event.externalId]);
    expect(record).toMatchObject({ status: 'pending', attempts: 1, nextAttemptAt: clock.now() + 1000 });

    // A reload: a new buffer on the same database does not burst before nextAttemptAt...
    const transport = timedTransport(server, clock);
    const second = make(undefined, { indexedDB: factory, dbName, clock, leaseDuration: 120_000, retry, transport });
    expect(await second.flush()).toMatchObject({ sent: 0, remaining: 1 });
    expect(transport.times).toHaveLength(0);
    // ...and sends once it has passed.
    clock.advance(1001);
    expect(await second.flush()).toMatchObject({ sent: 1, remaining: 0 });
    expect(server.events).toHaveLength(1);
  });

  it('backs off longer after each failed flush of the same events', async () => {
    const server = await startPolar({ faults: [{ status: 503, times: 2 }] });
    const clock = new JumpClock();
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const buffer = make(server, {
      indexedDB: factory,
      dbName,
      clock,
      leaseDuration: 120_000,
      retry: { retries: 0, minTimeout: 1000, maxTimeout: 60_000, factor: 2, randomize: false },
    });
    const event = await buffer.track(input(0));
    await buffer.flush();
    const [after1] = await readRecords(factory, dbName, [event.externalId]);
    const wait1 = after1!.nextAttemptAt - clock.now();
    clock.advance(wait1);
    await buffer.flush();
    const [after2] = await readRecords(factory, dbName, [event.externalId]);
    const wait2 = after2!.nextAttemptAt - clock.now();
    expect(after2!.attempts).toBe(2);
    expect(wait2).toBeGreaterThan(wait1);
  });
});
