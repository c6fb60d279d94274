import { create } from 'superstruct';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { matcher, prepareServerEvent } from '../../src/mirror/match.js';
import { openBufferDb, type BufferDatabase } from '../../src/storage/db.js';
import {
  applyPage,
  customerKeysFor,
  earliestUnconfirmed,
  pruneRetention,
  readCursor,
  readMerged,
  resendUnconfirmed,
  type MirrorItem,
} from '../../src/storage/mirror-store.js';
import { EVENTS, MIRROR, STATUSES, type EventRecord } from '../../src/storage/schema.js';
import { newRecord } from '../../src/storage/serialize.js';
import { claimBatch } from '../../src/storage/queue.js';
import { UserEventStruct } from '../../src/mirror/structs.js';
import { CUSTOMER_ID, userEventItem } from '../fixtures/events-list/polar-wire.js';
import { freshIndexedDB } from '../helpers/fresh-db.js';

const T = Date.parse('2025-06-02T14:03:07.123Z');
const opened: BufferDatabase[] = [];
afterEach(() => {
  for (const db of opened.splice(0)) db.close();
  vi.restoreAllMocks();
});

async function openDb(): Promise<BufferDatabase> {
  const db = await openBufferDb(freshIndexedDB(), 'mirror-test');
  opened.push(db);
  return db;
}

function item(overrides: Record<string, unknown> = {}): MirrorItem {
  const wire = userEventItem(overrides);
  return prepareServerEvent(create(wire, UserEventStruct), wire['timestamp']);
}

let seq = 0;
function localEvent(overrides: Partial<EventRecord> = {}, timestampMs = T): EventRecord {
  seq++;
  const s = `018f0000-0000-7000-8000-${String(seq).padStart(12, '0')}`;
  const record = newRecord(
    {
      name: 'api_call',
      externalCustomerId: 'user_42',
      metadata: { tokens: 12, model: 'gpt', _cost: { amount: 150, currency: 'usd' } },
      timestamp: new Date(timestampMs),
    },
    s,
    timestampMs,
  );
  return { ...record, status: 'sent', sentAt: timestampMs, ...overrides };
}

const apply = (db: BufferDatabase, items: MirrorItem[], cursor?: { scope: string; timestampMicros: number }) =>
  applyPage(db, items, { now: T, durability: 'relaxed', matcher, ...(cursor ? { cursor } : {}) });

const everyStatus = new Set(STATUSES);

describe('applyPage', () => {
  it('writes the mirror, confirms the matching sent event and moves the cursor together', async () => {
    const db = await openDb();
    const sent = localEvent();
    await db.put(EVENTS, sent);
    const page = [item()];
    const result = await apply(db, page, { scope: 'all', timestampMicros: 42 });
    expect(result).toMatchObject({ added: 1, updated: 0, unchanged: 0 });
    const confirmed = await db.get(EVENTS, sent.externalId);
    expect(confirmed).toMatchObject({ status: 'confirmed', serverId: page[0]!.record.id });
    expect((await db.get(MIRROR, page[0]!.record.id))?.localExternalId).toBe(sent.externalId);
    expect(await readCursor(db, 'all')).toEqual({ timestampMicros: 42 });
  });

  it('writes nothing of a page when one of its writes fails', async () => {
    const db = await openDb();
    const sent = localEvent();
    await db.put(EVENTS, sent);
    const good = item();
    const broken = item({ timestamp: '2025-06-02T14:03:08.000000+00:00' });
    // A value IndexedDB cannot clone makes the second put fail inside the transaction.
    (broken.record.event as Record<string, unknown>)['oops'] = () => undefined;
    await expect(apply(db, [good, broken], { scope: 'all', timestampMicros: 99 })).rejects.toThrow(/apply page/);
    expect(await db.count(MIRROR)).toBe(0);
    expect((await db.get(EVENTS, sent.externalId))?.status).toBe('sent');
    expect(await readCursor(db, 'all')).toBeUndefined();
  });

  it('confirms two identical events of the same millisecond with two server events, one each', async () => {
    const db = await openDb();
    const first = localEvent();
    const second = localEvent();
    await db.put(EVENTS, first);
    await db.put(EVENTS, second);
    const one = item();
    await apply(db, [one]);
    const afterOne = await Promise.all([db.get(EVENTS, first.externalId), db.get(EVENTS, second.externalId)]);
    expect(afterOne.map((r) => r?.status).sort()).toEqual(['confirmed', 'sent']);
    const two = item();
    await apply(db, [two]);
    const afterTwo = await Promise.all([db.get(EVENTS, first.externalId), db.get(EVENTS, second.externalId)]);
    expect(afterTwo.map((r) => r?.status)).toEqual(['confirmed', 'confirmed']);
    expect(new Set(afterTwo.map((r) => r?.serverId))).toEqual(new Set([one.record.id, two.record.id]));
  });

  it('replaces an older copy whose content changed and counts it as updated', async () => {
    const db = await openDb();
    const original = item();
    await apply(db, [original]);
    const changed = item({ id: original.record.id, customer: null });
    const same = item({ id: original.record.id, customer: null });
    expect(await apply(db, [changed])).toMatchObject({ added: 0, updated: 1, unchanged: 0 });
    expect(await apply(db, [same])).toMatchObject({ added: 0, updated: 0, unchanged: 1 });
    expect((await db.get(MIRROR, original.record.id))?.event['customer']).toBeNull();
  });

  it('keeps the link to the confirmed local event when a newer copy replaces the mirror entry', async () => {
    const db = await openDb();
    const sent = localEvent();
    await db.put(EVENTS, sent);
    const original = item();
    await apply(db, [original]);
    await apply(db, [item({ id: original.record.id, label: 'renamed' })]);
    expect((await db.get(MIRROR, original.record.id))?.localExternalId).toBe(sent.externalId);
  });

  it('never moves the cursor back', async () => {
    const db = await openDb();
    await apply(db, [], { scope: 'ext:user_42', timestampMicros: 500 });
    await apply(db, [], { scope: 'ext:user_42', timestampMicros: 400 });
    expect(await readCursor(db, 'ext:user_42')).toEqual({ timestampMicros: 500 });
  });

  it('remembers that an external id and a customer id name one customer', async () => {
    const db = await openDb();
    await apply(db, [item()]);
    expect(await customerKeysFor(db, `cus:${CUSTOMER_ID}`)).toEqual([`cus:${CUSTOMER_ID}`, 'ext:user_42']);
    expect(await customerKeysFor(db, 'ext:user_42')).toEqual(['ext:user_42', `cus:${CUSTOMER_ID}`]);
  });
});

describe('resendUnconfirmed', () => {
  const grace = 600_000;

  it('returns a sent event past the grace period to pending, keeping its sentAt', async () => {
    const db = await openDb();
    const sent = localEvent({ sentAt: T - grace - 1 });
    await db.put(EVENTS, sent);
    const resent = await resendUnconfirmed(db, { now: T, gracePeriod: grace, keys: null, durability: 'relaxed' });
    expect(resent).toHaveLength(1);
    expect(await db.get(EVENTS, sent.externalId)).toMatchObject({ status: 'pending', nextAttemptAt: 0, sentAt: T - grace - 1 });
  });

  it('leaves a sent event within the grace period alone', async () => {
    const db = await openDb();
    const sent = localEvent({ sentAt: T - grace + 1000 });
    await db.put(EVENTS, sent);
    await resendUnconfirmed(db, { now: T, gracePeriod: grace, keys: null, durability: 'relaxed' });
    expect((await db.get(EVENTS, sent.externalId))?.status).toBe('sent');
  });

  it('does not resend an event the server already counted as a duplicate', async () => {
    const db = await openDb();
    const held = localEvent({ sentAt: T - grace * 3, heldByServer: true });
    await db.put(EVENTS, held);
    await resendUnconfirmed(db, { now: T, gracePeriod: grace, keys: null, durability: 'relaxed' });
    expect((await db.get(EVENTS, held.externalId))?.status).toBe('sent');
  });

  it('only touches the customers it is given', async () => {
    const db = await openDb();
    const other = localEvent({ sentAt: T - grace * 2, customerKey: 'ext:someone-else' });
    await db.put(EVENTS, other);
    await resendUnconfirmed(db, { now: T, gracePeriod: grace, keys: ['ext:user_42'], durability: 'relaxed' });
    expect((await db.get(EVENTS, other.externalId))?.status).toBe('sent');
  });
});

describe('earliestUnconfirmed', () => {
  it('counts the events a live flush claim holds (on the wire, stored pending), and forgets them once the lease ran out', async () => {
    const db = await openDb();
    await db.put(EVENTS, localEvent({ status: 'sent' }, T + 5_000));
    await db.put(EVENTS, localEvent({ status: 'pending', sentAt: null }, T));
    await db.put(EVENTS, localEvent({ status: 'pending', sentAt: null, externalCustomerId: 'user_7', customerKey: 'ext:user_7' }, T - 9_000));
    expect(await earliestUnconfirmed(db, ['ext:user_42'], Date.now())).toBe(T + 5_000);
    const now = Date.now();
    const claim = await claimBatch(db, {
      now,
      batchSize: 10,
      maxBytes: 60_000,
      maxBatchBytes: 60_000,
      leaseDuration: 1000,
      owner: 'tab-a',
      durability: 'strict',
    });
    expect(claim.batch).toHaveLength(2);
    expect(await earliestUnconfirmed(db, ['ext:user_42'], now)).toBe(T);
    expect(await earliestUnconfirmed(db, null, now)).toBe(T - 9_000);
    expect(await earliestUnconfirmed(db, ['ext:user_42'], now + 1000)).toBe(T + 5_000);
  });
});

describe('pruneRetention', () => {
  it('removes mirrored events older than maxAge with the local events they confirmed', async () => {
    const db = await openDb();
    const old = localEvent({}, T - 10_000);
    await db.put(EVENTS, old);
    const oldItem = item({ timestamp: new Date(T - 10_000).toISOString() });
    const recent = item({ timestamp: new Date(T - 10).toISOString() });
    await apply(db, [oldItem, recent]);
    expect((await db.get(EVENTS, old.externalId))?.status).toBe('confirmed');
    const removed = await pruneRetention(db, { now: T, maxAge: 1000, maxEvents: 100, durability: 'relaxed' });
    expect(removed).toEqual({ mirror: 1, events: 1 });
    expect(await db.getAllKeys(MIRROR)).toEqual([recent.record.id]);
    expect(await db.get(EVENTS, old.externalId)).toBeUndefined();
  });

  it('keeps only the newest maxEvents mirrored events', async () => {
    const db = await openDb();
    const items = [3, 1, 2, 5, 4].map((s) => item({ timestamp: new Date(T - 100_000 + s * 1000).toISOString(), name: `e${s}` }));
    await apply(db, items);
    await pruneRetention(db, { now: T, maxAge: Infinity, maxEvents: 2, durability: 'relaxed' });
    const left = await db.getAll(MIRROR);
    expect(left.map((r) => r.name).sort()).toEqual(['e4', 'e5']);
  });

  it('never removes waiting, sent or dead events', async () => {
    const db = await openDb();
    const kept = [localEvent({ status: 'pending' }, 1), localEvent({ status: 'sent' }, 1), localEvent({ status: 'dead' }, 1)];
    for (const r of kept) await db.put(EVENTS, r);
    await pruneRetention(db, { now: T, maxAge: 1, maxEvents: 1, durability: 'relaxed' });
    expect(await db.count(EVENTS)).toBe(3);
  });
});

describe('readMerged', () => {
  it('reads through indexes only, never a whole store', async () => {
    const db = await openDb();
    await db.put(EVENTS, localEvent({ status: 'pending' }));
    await apply(db, [item(), item({ name: 'other' })]);
    const scans: string[] = [];
    const nativeStore = (globalThis as unknown as { IDBObjectStore: { prototype: IDBObjectStore } }).IDBObjectStore.prototype;
    for (const method of ['openCursor', 'getAll', 'getAllKeys', 'openKeyCursor'] as const) {
      const original = nativeStore[method] as (...args: unknown[]) => unknown;
      vi.spyOn(nativeStore, method).mockImplementation(function (this: IDBObjectStore, ...args: unknown[]) {
        scans.push(`${this.name}.${method}`);
        return original.apply(this, args);
      } as never);
    }
    for (const keys of [null, ['ext:user_42']]) {
      for (const name of [undefined, 'other']) {
        await readMerged(db, { keys, name, sinceMs: -Infinity, untilMs: Infinity, statuses: everyStatus, limit: 10, now: Date.now() });
      }
    }
    expect(scans).toEqual([]);
    // The spy sees store scans (so an empty list above means none happened).
    await db.getAll(MIRROR);
    expect(scans).toEqual(['mirror.getAll']);
  });

  it('returns a confirmed event once, joined with its local record', async () => {
    const db = await openDb();
    const sent = localEvent();
    await db.put(EVENTS, sent);
    await apply(db, [item()]);
    const entries = await readMerged(db, {
      keys: ['ext:user_42'],
      name: undefined,
      sinceMs: -Infinity,
      untilMs: Infinity,
      statuses: everyStatus,
      limit: 10,
      now: Date.now(),
    });
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ kind: 'mirror', local: { externalId: sent.externalId, status: 'confirmed' } });
  });

  it('returns the oldest entries first, up to the limit', async () => {
    const db = await openDb();
    await db.put(EVENTS, localEvent({ status: 'pending' }, T - 5000));
    await apply(db, [item({ timestamp: new Date(T - 1000).toISOString() }), item({ timestamp: new Date(T - 9000).toISOString() })]);
    const entries = await readMerged(db, {
      keys: null,
      name: undefined,
      sinceMs: -Infinity,
      untilMs: Infinity,
      statuses: everyStatus,
      limit: 2,
      now: Date.now(),
    });
    expect(entries.map((e) => e.record.timestampMs)).toEqual([T - 9000, T - 5000]);
  });
});
