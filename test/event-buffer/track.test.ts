import { describe, expect, it } from 'vitest';
import { object, number } from 'superstruct';
import { EventValidationError, QueueFullError } from '../../src/errors.js';
import { freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';
import { bufferFactory, input, readRecords, spyTransactions } from './support.js';
import { countCalls } from '../helpers/count-calls.js';

const make = bufferFactory();
const tx = spyTransactions();

describe('track()', () => {
  it('resolves only after its readwrite transaction completed, so another connection sees the record at once', async () => {
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const buffer = make(undefined, { indexedDB: factory, dbName });
    const other = make(undefined, { indexedDB: factory, dbName });
    await other.stats(); // open the second connection first
    tx.install();
    const event = await buffer.track(input(1));
    const writes = tx.log.filter((t) => t.mode === 'readwrite');
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.every((t) => t.completedAt !== null)).toBe(true);
    expect((await other.stats()).pending).toBe(1);
    const [record] = await readRecords(factory, dbName, [event.externalId]);
    expect(record?.status).toBe('pending');
  });

  it('resolves a track() made right after another one resolved', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB() });
    for (let i = 0; i < 5; i++) await buffer.track(input(i));
    expect((await buffer.stats()).pending).toBe(5);
  });

  it('rejects invalid input with EventValidationError listing every failing path and writes nothing', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB() });
    const error = await buffer
      .track({ name: '', externalCustomerId: 'u', customerId: 'not-a-uuid', metadata: { bad: null } } as never)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EventValidationError);
    const paths = (error as EventValidationError).failures.map((f) => f.path.join('.'));
    expect(paths).toContain('name');
    expect(paths).toContain('metadata.bad');
    expect(paths.length).toBeGreaterThanOrEqual(3);
    expect(await buffer.stats()).toMatchObject({ pending: 0, sending: 0, sent: 0, dead: 0 });
  });

  it('fails an invalid call alone while its concurrent neighbours in the same write succeed', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB() });
    const results = await Promise.allSettled([
      buffer.track(input(1)),
      buffer.track({ name: 'x'.repeat(129), externalCustomerId: 'u' }),
      buffer.track(input(3)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(EventValidationError);
    expect((await buffer.stats()).pending).toBe(2);
  });

  it('stores nothing from trackMany when one input is invalid, and prefixes failure paths with the index', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB() });
    const error = await buffer
      .trackMany([input(0), input(1), { name: 'ok', metadata: { v: 1 } } as never, input(3, { metadata: { nested: [1] } })])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EventValidationError);
    const paths = (error as EventValidationError).failures.map((f) => f.path);
    expect(paths.some((p) => p[0] === '2')).toBe(true);
    expect(paths.some((p) => p[0] === '3' && p[1] === 'metadata')).toBe(true);
    expect(paths.every((p) => p[0] === '2' || p[0] === '3')).toBe(true);
    expect((await buffer.stats()).pending).toBe(0);
  });

  it('rejects with QueueFullError past maxQueueSize and writes nothing', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), maxQueueSize: 3 });
    await buffer.trackMany([input(1), input(2), input(3)]);
    const error = await buffer.track(input(4)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueueFullError);
    expect((error as QueueFullError).maxQueueSize).toBe(3);
    expect((await buffer.stats()).pending).toBe(3);
  });

  it('rejects a trackMany that would cross maxQueueSize as a whole, keeping what was there', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), maxQueueSize: 5 });
    await buffer.trackMany([input(1), input(2), input(3)]);
    await expect(buffer.trackMany([input(4), input(5), input(6)])).rejects.toBeInstanceOf(QueueFullError);
    expect((await buffer.stats()).pending).toBe(3);
    await expect(buffer.trackMany([input(4), input(5)])).resolves.toHaveLength(2);
  });

  it('fails only the concurrent call that crosses maxQueueSize, not its neighbours', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), maxQueueSize: 2 });
    const results = await Promise.allSettled([buffer.track(input(1)), buffer.track(input(2)), buffer.track(input(3))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(QueueFullError);
    expect((await buffer.stats()).pending).toBe(2);
  });

  it('returns the stored event when the same event is tracked again under its externalId, storing it once', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB() });
    const first = await buffer.track(input(1, { externalId: 'order-7781' }));
    const again = await buffer.track(input(1, { externalId: 'order-7781' }));
    expect(again.externalId).toBe('order-7781');
    expect(again.metadata).toEqual(first.metadata);
    expect((await buffer.stats()).pending).toBe(1);
  });

  it('stores an event repeated inside one trackMany once', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB() });
    const events = await buffer.trackMany([input(1, { externalId: 'dup' }), input(1, { externalId: 'dup' }), input(3)]);
    expect(events.map((e) => e.externalId).slice(0, 2)).toEqual(['dup', 'dup']);
    expect((await buffer.stats()).pending).toBe(2);
  });

  it('refuses an event too large for maxBatchBytes at track() time, writing nothing', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), maxBatchBytes: 1024 });
    const error = await buffer.track(input(1, { metadata: { a: 'x'.repeat(500), b: 'y'.repeat(500) } })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EventValidationError);
    expect((error as Error).message).toMatch(/maxBatchBytes/);
    expect((await buffer.stats()).pending).toBe(0);
  });

  it('coalesces 100 concurrent track() calls into at most 2 readwrite transactions', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB() });
    await buffer.stats(); // the database is open: only the writes are counted
    tx.install();
    const events = await Promise.all(Array.from({ length: 100 }, (_, i) => buffer.track(input(i))));
    expect(new Set(events.map((e) => e.externalId)).size).toBe(100);
    expect(tx.log.filter((t) => t.mode === 'readwrite').length).toBeLessThanOrEqual(2);
    expect((await buffer.stats()).pending).toBe(100);
  });

  it('writes a burst of 5,000 calls in one transaction, in slices that go on from a request of that transaction, so the main thread is released between them', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), maxQueueSize: 10_000 });
    await buffer.stats();
    tx.install();
    // Each slice of the write ends by reading the waiting count, whose success comes in a new task.
    let waitingReads = 0;
    const spy = countCalls(IDBObjectStore.prototype, 'get', ([key]) => void (key === 'waiting' && waitingReads++));
    const events = await Promise.all(Array.from({ length: 5000 }, (_, i) => buffer.track(input(i))));
    spy.restore();
    expect(new Set(events.map((e) => e.externalId)).size).toBe(5000);
    expect(tx.log.filter((t) => t.mode === 'readwrite')).toHaveLength(1);
    // The first read is the count itself; every later one ends a slice (about 30 ms of work each).
    expect(waitingReads).toBeGreaterThan(1);
    expect((await buffer.stats()).pending).toBe(5000);
  });

  it('copies the input at the call: changing it afterwards does not change the event', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB() });
    const input = { name: 'api.call', externalCustomerId: 'user_1', metadata: { n: 1 } };
    const first = buffer.track(input);
    input.metadata.n = 2;
    input.name = 'changed';
    const second = buffer.track(input);
    expect([(await first).metadata.n, (await first).name, (await second).metadata.n]).toEqual([1, 'api.call', 2]);
  });

  it('enforces a per-name metadata schema', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), schemas: { 'llm.call': object({ tokens: number() }) } });
    const error = await buffer.track({ name: 'llm.call', externalCustomerId: 'u', metadata: { tokens: 'many' } } as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EventValidationError);
    expect((error as EventValidationError).failures.some((f) => f.path.includes('tokens'))).toBe(true);
    await expect(buffer.track({ name: 'llm.call', externalCustomerId: 'u', metadata: { tokens: 12 } })).resolves.toBeTruthy();
    expect((await buffer.stats()).pending).toBe(1);
  });

  it('applies defaults when the input has no customer', async () => {
    const buffer = make(undefined, {
      indexedDB: freshIndexedDB(),
      defaults: { externalCustomerId: 'default-user', organizationId: 'a8b4c8f0-6b9c-4d7e-9f2a-3c5d6e7f8a9b' },
    });
    const event = await buffer.track({ name: 'page.view' });
    expect(event.externalCustomerId).toBe('default-user');
    expect(event.organizationId).toBe('a8b4c8f0-6b9c-4d7e-9f2a-3c5d6e7f8a9b');
  });

  it('keeps separate queues for separate dbNames on one factory', async () => {
    const factory = freshIndexedDB();
    const a = make(undefined, { indexedDB: factory, dbName: uniqueDbName('a') });
    const b = make(undefined, { indexedDB: factory, dbName: uniqueDbName('b') });
    await a.trackMany([input(1), input(2)]);
    await b.track(input(3));
    expect((await a.stats()).pending).toBe(2);
    expect((await b.stats()).pending).toBe(1);
  });

  it('passes the durability option to its write transactions', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), durability: 'relaxed' });
    await buffer.stats();
    tx.install();
    await buffer.track(input(1));
    const writes = tx.log.filter((t) => t.mode === 'readwrite');
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.every((t) => t.durability === 'relaxed')).toBe(true);
  });

  it('uses strict durability by default', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB() });
    await buffer.stats();
    tx.install();
    await buffer.track(input(1));
    expect(tx.log.filter((t) => t.mode === 'readwrite').every((t) => t.durability === 'strict')).toBe(true);
  });
});
