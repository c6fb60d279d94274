import { describe, expect, it } from 'vitest';
import { TransportError } from '../../src/errors.js';
import { httpTransport } from '../../src/transport/http.js';
import type { Transport } from '../../src/transport/transport.js';
import { freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';
import { countCalls } from '../helpers/count-calls.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { EVENTS } from '../../src/storage/schema.js';
import { userEventItem } from '../fixtures/events-list/polar-wire.js';
import { createMirror } from '../../src/mirror/index.js';
import { bufferFactory, heldTransport, input, readRecords, withDb } from './support.js';

const startPolar = useMockPolar();
const make = bufferFactory();

function ingestBodies(server: { ingestRequests(): { body: unknown; status: number | null }[] }) {
  return server.ingestRequests().map((r) => (r.body as { events: { external_id: string; parent_id?: string; timestamp: string }[] }).events);
}

describe('flush()', () => {
  it('sends the oldest events first, in the order track() accepted them, each with its externalId as external_id', async () => {
    const server = await startPolar();
    const buffer = make(server, { indexedDB: freshIndexedDB(), batchSize: 4 });
    const tracked = [];
    for (let i = 0; i < 10; i++) tracked.push(await buffer.track(input(i)));
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 10, duplicates: 0, deadLettered: 0, remaining: 0 });
    expect(server.storedExternalIds()).toEqual(tracked.map((e) => e.externalId));
    expect(server.events.map((e) => (e.metadata as { n: number }).n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Each event went on the wire once.
    expect(
      ingestBodies(server)
        .flat()
        .map((e) => e.external_id),
    ).toEqual(tracked.map((e) => e.externalId));
  });

  it('gives every event a unique externalId that sorts in creation order', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB() });
    const events = [
      ...(await buffer.trackMany(Array.from({ length: 50 }, (_, i) => input(i)))),
      ...(await Promise.all(Array.from({ length: 50 }, (_, i) => buffer.track(input(50 + i))))),
    ];
    const ids = events.map((e) => e.externalId);
    expect(new Set(ids).size).toBe(100);
    expect([...ids].sort()).toEqual(ids);
  });

  it('sends batches of at most batchSize events', async () => {
    const server = await startPolar();
    const buffer = make(server, { indexedDB: freshIndexedDB(), batchSize: 3 });
    await buffer.trackMany(Array.from({ length: 8 }, (_, i) => input(i)));
    await buffer.flush();
    expect(ingestBodies(server).map((b) => b.length)).toEqual([3, 3, 2]);
  });

  it('keeps every request body under maxBatchBytes', async () => {
    const server = await startPolar();
    const buffer = make(server, { indexedDB: freshIndexedDB(), maxBatchBytes: 1024 });
    await buffer.trackMany(Array.from({ length: 20 }, (_, i) => input(i, { metadata: { n: i, prompt: 'p'.repeat(150) } })));
    const report = await buffer.flush();
    expect(report.sent).toBe(20);
    const sizes = server.ingestRequests().map((r) => Buffer.byteLength(JSON.stringify(r.body)));
    expect(sizes.length).toBeGreaterThan(3);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1024);
  });

  it('runs one flush at a time: two concurrent flush() calls make one set of requests', async () => {
    const server = await startPolar({ latencyMs: 30 });
    const buffer = make(server, { indexedDB: freshIndexedDB(), batchSize: 5 });
    await buffer.trackMany(Array.from({ length: 10 }, (_, i) => input(i)));
    const [a, b] = await Promise.all([buffer.flush(), buffer.flush()]);
    expect(server.ingestRequests()).toHaveLength(2);
    expect(a.sent + (b === a ? 0 : b.sent)).toBe(10);
    expect(server.events).toHaveLength(10);
  });

  it('lets only one of two buffers on the same database flush at a time', async () => {
    const server = await startPolar({ latencyMs: 30 });
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const a = make(server, { indexedDB: factory, dbName, batchSize: 5 });
    const b = make(server, { indexedDB: factory, dbName, batchSize: 5 });
    const events = await a.trackMany(Array.from({ length: 10 }, (_, i) => input(i)));
    const [ra, rb] = await Promise.all([a.flush(), b.flush()]);
    expect(ra.sent + rb.sent).toBe(10);
    expect(server.ingestRequests()).toHaveLength(2);
    expect(server.storedExternalIds()).toEqual(events.map((e) => e.externalId));
  });

  it('dead-letters, with a reason, a single event the server refuses as too large', async () => {
    const server = await startPolar({ maxBodyBytes: 1000 });
    const buffer = make(server, { indexedDB: freshIndexedDB() });
    const big = await buffer.track(input(0, { metadata: { text: 'x'.repeat(450), more: 'y'.repeat(450) } }));
    const small = await buffer.track(input(1));
    expect(await buffer.flush()).toMatchObject({ sent: 1, deadLettered: 1 });
    const [dead] = await buffer.deadLetters();
    expect(dead?.externalId).toBe(big.externalId);
    expect(dead?.error).toMatch(/413|too large/);
    expect(server.storedExternalIds()).toEqual([small.externalId]);
  });

  it('never sends a child before its parent, and sends the parent first when both are in one batch', async () => {
    const server = await startPolar();
    const buffer = make(server, { indexedDB: freshIndexedDB(), batchSize: 10 });
    const parent = await buffer.track(input(0, { externalId: 'run-1' }));
    const child = await buffer.track(input(1, { parentId: parent.externalId }));
    await buffer.flush();
    const sent = ingestBodies(server).flat();
    expect(sent.map((e) => e.external_id)).toEqual(['run-1', child.externalId]);
    expect(server.events).toHaveLength(2);
    expect(server.stored()[1]?.event.parent_id).toBe(server.stored()[0]?.event.id);
  });

  it('holds back a child tracked before its parent until the parent was sent', async () => {
    const server = await startPolar();
    const buffer = make(server, { indexedDB: freshIndexedDB(), batchSize: 10 });
    const child = await buffer.track(input(1, { parentId: 'late-parent' }));
    await buffer.track(input(0, { externalId: 'late-parent' }));
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 2, deadLettered: 0 });
    const order = ingestBodies(server)
      .flat()
      .map((e) => e.external_id);
    expect(order.indexOf('late-parent')).toBeLessThan(order.indexOf(child.externalId));
    expect(server.ingestRequests().every((r) => r.status === 200)).toBe(true);
  });

  it('dead-letters the child of a dead-lettered parent with a reason naming the parent', async () => {
    const server = await startPolar();
    const http = httpTransport({ baseUrl: server.url });
    // The parent goes out with a 600-character metadata string, which Polar refuses (at most 500).
    const transport: Transport = {
      ingest: (events, opts) =>
        http.ingest(
          events.map((e) => (e.external_id === 'bad-parent' ? { ...e, metadata: { text: 'x'.repeat(600) } } : e)),
          opts,
        ),
    };
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), transport, batchSize: 10 });
    await buffer.track(input(0, { externalId: 'bad-parent' }));
    const child = await buffer.track(input(1, { parentId: 'bad-parent' }));
    const other = await buffer.track(input(2));
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 1, deadLettered: 2 });
    const dead = await buffer.deadLetters();
    expect(dead.map((e) => e.externalId).sort()).toEqual(['bad-parent', child.externalId].sort());
    expect(dead.find((e) => e.externalId === child.externalId)?.error).toContain('bad-parent');
    expect(server.storedExternalIds()).toEqual([other.externalId]);
  });

  it('dead-letters only the events a 422 names by index, with the server message, and sends the rest in the same flush', async () => {
    const server = await startPolar();
    const buffer = make(server, { indexedDB: freshIndexedDB(), batchSize: 10 });
    const seen: string[][] = [];
    buffer.on('deadletter', ({ events }) => seen.push(events.map((e) => e.externalId)));
    const ok1 = await buffer.track(input(0));
    const bad = await buffer.track(input(1, { externalId: 'will-fail' }));
    const ok2 = await buffer.track(input(2));
    server.addFaults({
      status: 422,
      body: {
        detail: [
          {
            type: 'string_too_long',
            loc: ['body', 'events', 1, 'EventCreateExternalCustomer', 'name'],
            msg: 'String should have at most 128 characters',
            input: 'x',
          },
        ],
      },
    });
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 2, deadLettered: 1, remaining: 0 });
    expect(server.storedExternalIds()).toEqual([ok1.externalId, ok2.externalId]);
    const dead = await buffer.deadLetters();
    expect(dead.map((e) => e.externalId)).toEqual([bad.externalId]);
    expect(dead[0]?.error).toContain('String should have at most 128 characters');
    expect(seen).toEqual([[bad.externalId]]);
  });

  it('writes each event once per flush: a batch is leased by one record, not by rewriting its events', async () => {
    const server = await startPolar();
    const buffer = make(server, { indexedDB: freshIndexedDB(), batchSize: 50 });
    await buffer.trackMany(Array.from({ length: 200 }, (_, i) => input(i)));
    let eventPuts = 0;
    let otherPuts = 0;
    const spy = countCalls(IDBObjectStore.prototype, 'put', ([value]) => {
      if (value && typeof value === 'object' && 'externalId' in value) eventPuts++;
      else otherPuts++;
    });
    expect(await buffer.flush()).toMatchObject({ sent: 200, remaining: 0 });
    spy.restore();
    expect(eventPuts).toBe(200);
    // Per batch: its claim, and the waiting count its settle lowers; once: the flush lease (no Web Locks in Node).
    expect(otherPuts).toBeLessThanOrEqual(4 * 2 + 1);
  });

  it('shows the events of a batch on the wire as `sending` in stats() and query(), and as sent once the server answered', async () => {
    const { transport, onWire, release } = heldTransport();
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), transport, batchSize: 3 });
    const mirror = createMirror(buffer);
    const tracked = await buffer.trackMany(Array.from({ length: 5 }, (_, i) => input(i)));
    const flushing = buffer.flush();
    await onWire;
    try {
      expect(await buffer.stats()).toMatchObject({ pending: 2, sending: 3, sent: 0 });
      // Read by key from the claim, not by reading the whole pending range (the backlog).
      let pendingReads = 0;
      const spy = countCalls(IDBIndex.prototype, 'getAll', (args) => {
        const range = args[0] as IDBKeyRange | undefined;
        if (Array.isArray(range?.lower) && range.lower[0] === 'pending') pendingReads++;
      });
      const sending = await mirror.query({ status: 'sending' });
      spy.restore();
      expect(pendingReads).toBe(0);
      expect(sending.map((e) => [e.externalId, e.status])).toEqual(tracked.slice(0, 3).map((e) => [e.externalId, 'sending']));
      expect((await mirror.query({ status: 'pending' })).map((e) => e.externalId)).toEqual(tracked.slice(3).map((e) => e.externalId));
      const forOne = await mirror.query({ externalCustomerId: tracked[0]!.externalCustomerId! });
      expect(forOne.find((e) => e.externalId === tracked[0]!.externalId)?.status).toBe('sending');
    } finally {
      release();
    }
    expect(await flushing).toMatchObject({ sent: 5, remaining: 0 });
    expect(await buffer.stats()).toMatchObject({ pending: 0, sending: 0, sent: 5 });
  });

  it('confirms, in a reconcile while a batch is on the wire, the event on the wire rather than an older twin that backs off', async () => {
    const { transport, onWire, release } = heldTransport();
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const buffer = make(undefined, { indexedDB: factory, dbName, transport });
    const mirror = createMirror(buffer);
    const ts = new Date(Date.now() - 60_000);
    const same = { name: 'api.call', externalCustomerId: 'user_42', metadata: { n: 1 }, timestamp: ts };
    const twin = await buffer.track(same);
    // The older twin was tried once (its send failed) and backs off for an hour.
    await withDb(factory, dbName, async (db) => {
      const r = (await db.get(EVENTS, twin.externalId))!;
      await db.put(EVENTS, { ...r, attempts: 1, nextAttemptAt: Date.now() + 3_600_000, error: '503' });
    });
    const onTheWire = await buffer.track(same);
    const flushing = buffer.flush();
    await onWire;
    try {
      // The server stored the event on the wire; a reconcile sees it before the answer comes back.
      await mirror.reconcile([userEventItem({ name: 'api.call', timestamp: ts.toISOString().replace('Z', '000+00:00'), metadata: { n: 1 } })]);
    } finally {
      release();
    }
    await flushing;
    const [a, b] = await readRecords(factory, dbName, [twin.externalId, onTheWire.externalId]);
    // Confirming the twin instead would leave it never sent: lost.
    expect(b!.status).toBe('confirmed');
    expect(a!.status).toBe('pending');
  });

  it('returns an event tracked again under its own externalId while it is on the wire as sending, as query() shows it', async () => {
    const { transport, onWire, release } = heldTransport();
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), transport });
    const mirror = createMirror(buffer);
    await buffer.track(input(1, { externalId: 'order-1' }));
    const flushing = buffer.flush();
    await onWire;
    try {
      const again = await buffer.track(input(1, { externalId: 'order-1' }));
      expect(again.status).toBe('sending');
      expect((await mirror.query({ status: 'sending' })).map((e) => e.externalId)).toEqual(['order-1']);
    } finally {
      release();
    }
    expect(await flushing).toMatchObject({ sent: 1 });
  });

  it('sends events that went back to waiting (refused only for sharing a batch with a 422) before newer ones', async () => {
    const server = await startPolar();
    const buffer = make(server, { indexedDB: freshIndexedDB(), batchSize: 3 });
    const tracked = await buffer.trackMany(Array.from({ length: 7 }, (_, i) => input(i)));
    server.addFaults({
      status: 422,
      body: {
        detail: [
          {
            type: 'string_too_long',
            loc: ['body', 'events', 1, 'EventCreateExternalCustomer', 'name'],
            msg: 'String should have at most 128 characters',
            input: 'x',
          },
        ],
      },
    });
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 6, deadLettered: 1, remaining: 0 });
    const ids = tracked.map((e) => e.externalId);
    // Events 0 and 2 (refused only for sharing the batch) are sent before 3..6.
    expect(server.storedExternalIds()).toEqual([ids[0], ids[2], ids[3], ids[4], ids[5], ids[6]]);
    expect(ingestBodies(server).map((b) => b.map((e) => e.external_id))).toEqual([
      [ids[0], ids[1], ids[2]],
      [ids[0], ids[2], ids[3]],
      [ids[4], ids[5], ids[6]],
    ]);
    expect((await buffer.stats()).sending).toBe(0);
  });

  it('when a batch stops the flush (retries exhausted), counts an attempt on that batch only; the later events are untouched', async () => {
    const server = await startPolar();
    const buffer = make(server, { indexedDB: freshIndexedDB(), batchSize: 2, dbName: uniqueDbName() });
    const mirror = createMirror(buffer);
    const tracked = await buffer.trackMany(Array.from({ length: 4 }, (_, i) => input(i)));
    server.addFaults(...Array.from({ length: 4 }, () => ({ status: 503 })));
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 0, remaining: 4, stoppedBy: 'retries-exhausted' });
    expect(await buffer.stats()).toMatchObject({ pending: 4, sending: 0 });
    const events = await mirror.query({ status: ['pending'] });
    const attempts = new Map(events.map((e) => [e.externalId, e.attempts]));
    expect(tracked.map((e) => attempts.get(e.externalId))).toEqual([1, 1, 0, 0]);
  });

  it('bisects a 422 that names no index until only the bad events are dead-lettered', async () => {
    const server = await startPolar();
    const http = httpTransport({ baseUrl: server.url });
    let requests = 0;
    const transport: Transport = {
      async ingest(events, opts) {
        requests++;
        if (events.some((e) => (e.metadata as { poison?: boolean } | undefined)?.poison)) {
          throw new TransportError('422 without loc', {
            status: 422,
            detail: [{ type: 'value_error', loc: ['body'], msg: 'Something in the batch is wrong' }],
          });
        }
        return http.ingest(events, opts);
      },
    };
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), transport, batchSize: 8 });
    const events = await buffer.trackMany(Array.from({ length: 8 }, (_, i) => input(i, { metadata: { n: i, poison: i === 2 || i === 5 } })));
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 6, deadLettered: 2, remaining: 0 });
    expect((await buffer.deadLetters()).map((e) => e.externalId).sort()).toEqual([events[2]!.externalId, events[5]!.externalId].sort());
    expect(server.storedExternalIds()).toEqual(events.filter((_, i) => i !== 2 && i !== 5).map((e) => e.externalId));
    expect(requests).toBeLessThan(16);
  });

  it('splits a batch the server refuses as too large (413) and sends all of it', async () => {
    const server = await startPolar({ maxBodyBytes: 1500 });
    const buffer = make(server, { indexedDB: freshIndexedDB(), batchSize: 20 });
    const tracked = await buffer.trackMany(Array.from({ length: 20 }, (_, i) => input(i)));
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 20, deadLettered: 0 });
    expect(server.ingestRequests().some((r) => r.status === 413)).toBe(true);
    // The accepted requests carried each event once.
    const accepted = server.ingestRequests().filter((r) => r.status === 200);
    const acceptedIds = accepted.flatMap((r) => (r.body as { events: { external_id: string }[] }).events.map((e) => e.external_id));
    expect(acceptedIds.sort()).toEqual(tracked.map((e) => e.externalId).sort());
  });

  it('on 401 emits "error", dead-letters nothing, keeps events pending, pauses auto flush, and an explicit flush() tries again', async () => {
    const server = await startPolar({ token: 'polar_oat_right' });
    let token = 'polar_oat_wrong';
    const factory = freshIndexedDB();
    const buffer = make(undefined, {
      indexedDB: factory,
      transport: httpTransport({ baseUrl: server.url, headers: () => ({ Authorization: `Bearer ${token}` }) }),
    });
    const errors: unknown[] = [];
    buffer.on('error', (e) => errors.push(e));
    await buffer.trackMany([input(0), input(1)]);
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 0, deadLettered: 0, remaining: 2, stoppedBy: 'unauthorized' });
    expect(errors.some((e) => e instanceof TransportError && e.status === 401)).toBe(true);
    expect(await buffer.stats()).toMatchObject({ pending: 2, dead: 0 });
    token = 'polar_oat_right';
    expect(await buffer.flush()).toMatchObject({ sent: 2 });
    expect(server.events).toHaveLength(2);
  });

  it('on 403 keeps the events pending, dead-letters nothing and emits "error"', async () => {
    const server = await startPolar({ faults: [{ status: 403, body: { detail: 'Not permitted' } }] });
    const buffer = make(server, { indexedDB: freshIndexedDB() });
    const errors: unknown[] = [];
    buffer.on('error', (e) => errors.push(e));
    await buffer.track(input(0));
    expect(await buffer.flush()).toMatchObject({ sent: 0, deadLettered: 0, stoppedBy: 'unauthorized' });
    expect(errors.some((e) => e instanceof TransportError && e.status === 403)).toBe(true);
    expect(await buffer.stats()).toMatchObject({ pending: 1, dead: 0 });
    expect(server.ingestRequests()).toHaveLength(1);
  });

  it('retries a dropped connection and the server holds each event once', async () => {
    const server = await startPolar({ faults: [{ drop: true }, { drop: true, afterProcessing: true }] });
    const buffer = make(server, { indexedDB: freshIndexedDB() });
    const tracked = await buffer.trackMany([input(0), input(1), input(2)]);
    const report = await buffer.flush();
    expect(report.sent).toBe(3);
    // Every try carried the same external_ids, so the server could tell the events it already held.
    const ids = tracked.map((e) => e.externalId);
    expect(ingestBodies(server).map((b) => b.map((e) => e.external_id))).toEqual([ids, ids, ids]);
    expect(server.events).toHaveLength(3);
    expect(report.duplicates).toBe(3);
  });

  it('clamps timestamps in the server future on the wire, while the local record keeps the original', async () => {
    const server = await startPolar({ clockOffsetMs: -10 * 60_000 });
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const buffer = make(server, { indexedDB: factory, dbName });
    const event = await buffer.track(input(0));
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 1, deadLettered: 0 });
    expect(server.events).toHaveLength(1);
    const serverMs = Date.parse(server.events[0]!.timestamp);
    expect(serverMs).toBeLessThan(event.timestamp.getTime() - 5 * 60_000);
    const [record] = await readRecords(factory, dbName, [event.externalId]);
    expect(record?.timestampMs).toBe(event.timestamp.getTime());
    expect(record?.status).toBe('sent');
  });
});
