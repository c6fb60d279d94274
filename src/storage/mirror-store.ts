import { storageError, type BufferDatabase } from './db.js';
import type { Durability } from './schema.js';
import { addWaiting, asShown, heldIds, liveClaims, statusRange, type Tx } from './queue.js';
import {
  BY_CUSTOMER,
  BY_FINGERPRINT,
  BY_NAME,
  BY_STATUS,
  BY_TIME,
  EVENTS,
  META,
  MIRROR,
  type EventRecord,
  type EventStatus,
  type MirrorRecord,
} from './schema.js';

/**
 * The mirror's domain verbs: every IndexedDB access of reconcile and query. Each verb is one
 * transaction; callers never see one. Inside a transaction only that transaction's requests are
 * awaited (see db.ts on transaction lifetime).
 *
 * `meta` keys used here: `cursor:<scope>` (scope `all` or a customer key, the same key clear()
 * deletes) and `alias:<customerKey>` (the other keys the server showed for that customer, so a
 * query by `customerId` also finds events tracked with `externalCustomerId`, and back).
 */

/** Where the last reconcile of a scope ended: the newest server timestamp applied, in µs. */
export interface ReconcileCursor {
  timestampMicros: number;
}

export function cursorKey(scope: string): string {
  return `cursor:${scope}`;
}

function aliasKey(customerKey: string): string {
  return `alias:${customerKey}`;
}

export async function readCursor(db: BufferDatabase, scope: string): Promise<ReconcileCursor | undefined> {
  try {
    const record = await db.get(META, cursorKey(scope));
    const value = record?.value as ReconcileCursor | undefined;
    return value && typeof value.timestampMicros === 'number' ? value : undefined;
  } catch (error) {
    throw storageError('reconcile (read cursor)', error);
  }
}

/** The customer keys that name the same customer as `customerKey` (itself first). */
export async function customerKeysFor(db: BufferDatabase, customerKey: string): Promise<string[]> {
  try {
    const record = await db.get(META, aliasKey(customerKey));
    const others = Array.isArray(record?.value) ? (record.value as string[]) : [];
    return [customerKey, ...others.filter((k) => k !== customerKey)];
  } catch (error) {
    throw storageError('read', error);
  }
}

/**
 * The earliest timestamp (ms) of a `sent` or `sending` event not yet confirmed nor known to be held
 * by the server, among those customer keys (all when null). Reads only those states (a small set:
 * they are confirmed or resent) and the live flush claims, never the whole store.
 */
export async function earliestUnconfirmed(db: BufferDatabase, keys: readonly string[] | null, now: number): Promise<number | null> {
  try {
    const tx = db.transaction([EVENTS, META], 'readonly');
    const index = tx.objectStore(EVENTS).index(BY_STATUS);
    let earliest: number | null = null;
    const consider = (customerKey: string, timestampMs: number) => {
      if (keys === null || keys.includes(customerKey)) earliest = Math.min(earliest ?? Infinity, timestampMs);
    };
    for (const status of ['sent', 'sending'] as const) {
      for (const r of await index.getAll(statusRange(status))) if (!r.heldByServer) consider(r.customerKey, r.timestampMs);
    }
    // Events on the wire under a claim (stored pending): their earliest timestamp per customer.
    for (const claim of await liveClaims(tx.objectStore(META), now)) {
      for (const [customerKey, timestampMs] of Object.entries(claim.earliest ?? {})) consider(customerKey, timestampMs);
    }
    await tx.done;
    return earliest;
  } catch (error) {
    throw storageError('reconcile (read sent events)', error);
  }
}

/** A validated server event, ready to be written to the mirror (made by mirror/match.ts). */
export interface MirrorItem {
  /** The mirror record, without `localExternalId` and `storedAt` (applyPage sets them). */
  record: Omit<MirrorRecord, 'localExternalId' | 'storedAt'>;
  /** Microseconds since the epoch, as the server sent them (the reconcile cursor's precision). */
  timestampMicros: number;
  /** Every customer key the event carries (`ext:` and `cus:`), to learn which keys name one customer. */
  customerKeys: string[];
}

/** The matching rules applyPage follows (pure functions from mirror/match.ts). */
export interface Matcher {
  /** The local event a server event confirms, among the `sent` ones with one of its fingerprints. */
  choose(candidates: readonly EventRecord[]): EventRecord | undefined;
  /** The local record once confirmed. */
  confirm(record: EventRecord, serverId: string, now: number): EventRecord;
  /** Whether two stored copies of a server event hold the same content. */
  same(a: unknown, b: unknown): boolean;
}

export interface ApplyPageResult {
  added: number;
  updated: number;
  unchanged: number;
  /** Local events this page confirmed (as written). */
  confirmed: EventRecord[];
}

/**
 * Applies one page of validated server events in ONE transaction: upserts each into the mirror by
 * `id` (a copy whose content changed replaces the older: `updated`; the same content: `unchanged`),
 * links each to the one best `sent` local event it matches, which becomes `confirmed` (one-to-one:
 * this transaction sees its own writes), records which customer keys name one customer, and moves
 * the cursor forward (never back). All of it commits, or none of it. A waiting or in-flight event
 * is never touched: only an ingest answer moves it (a copy of its content may be another device's
 * twin); settle() links it when its answer comes.
 */
export async function applyPage(
  db: BufferDatabase,
  items: readonly MirrorItem[],
  options: { now: number; durability: Durability; matcher: Matcher; cursor?: { scope: string; timestampMicros: number } },
): Promise<ApplyPageResult> {
  const result: ApplyPageResult = { added: 0, updated: 0, unchanged: 0, confirmed: [] };
  let tx: Abortable | undefined;
  try {
    const t = db.transaction([EVENTS, MIRROR, META], 'readwrite', { durability: options.durability });
    tx = t;
    const mirror = t.objectStore(MIRROR);
    const events = t.objectStore(EVENTS);
    const meta = t.objectStore(META);
    const byFingerprint = events.index(BY_FINGERPRINT);
    const aliases = new Map<string, { keys: Set<string>; changed: boolean }>();

    for (const item of items) {
      const existing = await mirror.get(item.record.id);
      let localExternalId = existing?.localExternalId ?? null;
      if (existing && options.matcher.same(existing.event, item.record.event)) {
        result.unchanged++;
        if (localExternalId !== null) continue;
      } else if (existing) {
        result.updated++;
      } else {
        result.added++;
      }
      if (localExternalId === null) {
        const candidates: EventRecord[] = [];
        for (const fingerprint of item.record.fingerprints) {
          for (const c of await byFingerprint.getAll(fingerprint)) if (c.status === 'sent') candidates.push(c);
        }
        const match = options.matcher.choose(candidates);
        if (match) {
          const confirmed = options.matcher.confirm(match, item.record.id, options.now);
          await events.put(confirmed);
          result.confirmed.push(confirmed);
          localExternalId = match.externalId;
        }
      }
      const record: MirrorRecord = { ...item.record, storedAt: options.now, localExternalId };
      await mirror.put(record);

      if (item.customerKeys.length > 1) {
        for (const key of item.customerKeys) {
          let entry = aliases.get(key);
          if (!entry) {
            const stored = await meta.get(aliasKey(key));
            entry = { keys: new Set(Array.isArray(stored?.value) ? (stored.value as string[]) : []), changed: false };
            aliases.set(key, entry);
          }
          for (const other of item.customerKeys) {
            if (other !== key && !entry.keys.has(other)) {
              entry.keys.add(other);
              entry.changed = true;
            }
          }
        }
      }
    }
    for (const [key, entry] of aliases) {
      if (entry.changed) await meta.put({ key: aliasKey(key), value: [...entry.keys] });
    }
    if (options.cursor) {
      const key = cursorKey(options.cursor.scope);
      const stored = (await meta.get(key))?.value as ReconcileCursor | undefined;
      if (!stored || !(stored.timestampMicros >= options.cursor.timestampMicros)) {
        await meta.put({ key, value: { timestampMicros: options.cursor.timestampMicros } satisfies ReconcileCursor });
      }
    }
    await t.done;
  } catch (error) {
    // A request that throws (e.g. a value IndexedDB cannot clone) does not abort the transaction
    // by itself: abort it, so the writes already made in it are undone and the page is all or nothing.
    abortQuietly(tx);
    throw storageError('reconcile (apply page)', error);
  }
  return result;
}

/**
 * `sent` events still unconfirmed though `gracePeriod` ms of their send had passed at `now` go back
 * to `pending`, due at once, to be sent again (their `external_id` makes that safe). The caller
 * passes as `now` the time its pull began, not its end: a list read before the grace ended may
 * simply not show the event yet. Events the server already counted as duplicates of a resend
 * (`heldByServer`) are not resent again. `sentAt` is kept: the flusher uses it to recognise a
 * resend. Returns the events returned to waiting.
 */
export async function resendUnconfirmed(
  db: BufferDatabase,
  options: { now: number; gracePeriod: number; keys: readonly string[] | null; durability: Durability },
): Promise<EventRecord[]> {
  const resent: EventRecord[] = [];
  let tx: Abortable | undefined;
  try {
    // META too: the waiting count grows in the same transaction.
    const t = db.transaction([EVENTS, META], 'readwrite', { durability: options.durability });
    tx = t;
    let cursor = await t.objectStore(EVENTS).index(BY_STATUS).openCursor(statusRange('sent'));
    while (cursor) {
      const r = cursor.value;
      if (
        !r.heldByServer &&
        r.sentAt !== null &&
        r.sentAt + options.gracePeriod <= options.now &&
        (options.keys === null || options.keys.includes(r.customerKey))
      ) {
        const next: EventRecord = { ...r, status: 'pending', nextAttemptAt: 0 };
        await cursor.update(next);
        resent.push(next);
      }
      cursor = await cursor.continue();
    }
    await addWaiting(t as unknown as Tx, resent.length);
    await t.done;
  } catch (error) {
    abortQuietly(tx);
    throw storageError('reconcile (resend unconfirmed)', error);
  }
  return resent;
}

/**
 * Retention, oldest first, in one transaction: mirrored events older than `maxAge` (by event
 * timestamp) or beyond the newest `maxEvents` are deleted with the confirmed local event each one
 * matched; confirmed local events are bounded the same way. Waiting, sent and dead events are
 * never touched.
 */
export async function pruneRetention(
  db: BufferDatabase,
  options: { now: number; maxAge: number; maxEvents: number; durability: Durability },
): Promise<{ mirror: number; events: number }> {
  const removed = { mirror: 0, events: 0 };
  const oldest = options.now - options.maxAge;
  let tx: Abortable | undefined;
  try {
    const t = db.transaction([EVENTS, MIRROR], 'readwrite', { durability: options.durability });
    tx = t;
    const mirror = t.objectStore(MIRROR);
    const events = t.objectStore(EVENTS);
    let count = await mirror.count();
    let cursor = await mirror.index(BY_TIME).openCursor();
    while (cursor && (count > options.maxEvents || cursor.value.timestampMs < oldest)) {
      const local = cursor.value.localExternalId;
      if (local !== null) {
        const record = await events.get(local);
        if (record?.status === 'confirmed') {
          await events.delete(local);
          removed.events++;
        }
      }
      await cursor.delete();
      removed.mirror++;
      count--;
      cursor = await cursor.continue();
    }
    // A confirmed local event goes with its mirrored event (above), so it is bounded by age with
    // it; the count bound here only acts when confirmed events outnumber maxEvents (cheap to check).
    let confirmedCount = await events.index(BY_STATUS).count(statusRange('confirmed'));
    if (confirmedCount > options.maxEvents) {
      let local = await events.index(BY_STATUS).openCursor(statusRange('confirmed'));
      while (local && confirmedCount > options.maxEvents) {
        await local.delete();
        removed.events++;
        confirmedCount--;
        local = await local.continue();
      }
    }
    await t.done;
  } catch (error) {
    abortQuietly(tx);
    throw storageError('reconcile (retention)', error);
  }
  return removed;
}

/**
 * Makes room when the browser's storage quota is reached: the older half of the mirror goes (with
 * the confirmed local events it matched), oldest first. The mirror can be pulled again from the
 * server; waiting, sent and dead events are never touched. Resolves to how many records went.
 */
export async function relieveQuota(db: BufferDatabase, options: { now: number; durability: Durability }): Promise<number> {
  let count: number;
  try {
    count = await db.count(MIRROR);
  } catch (error) {
    throw storageError('quota relief', error);
  }
  if (count === 0) return 0;
  const removed = await pruneRetention(db, { now: options.now, maxAge: Infinity, maxEvents: Math.floor(count / 2), durability: options.durability });
  return removed.mirror + removed.events;
}

/** A plan for one merged-view read (built and checked by mirror/query.ts). */
/** A member filter: which reference, and its value. */
export type MemberRef = ['memberId' | 'externalMemberId', string];

export interface MergedReadPlan {
  /** Customer keys of one customer (its aliases included), or null for every customer. */
  keys: readonly string[] | null;
  name: string | undefined;
  member?: MemberRef | undefined;
  /** Inclusive lower bound, ms. */
  sinceMs: number;
  /** Exclusive upper bound, ms. */
  untilMs: number;
  statuses: ReadonlySet<EventStatus>;
  limit: number;
  /** Claims whose lease runs at `now` make their pending events `sending`. */
  now: number;
}

export type MergedEntry = { kind: 'mirror'; record: MirrorRecord; local: EventRecord | undefined } | { kind: 'local'; record: EventRecord };

/**
 * Reads the merged view through indexes only: mirrored events by `[customerKey, timestampMs]`,
 * `[name, timestampMs]` or `timestampMs` (each range read stops at `limit`, except a customer's
 * range filtered by name, read whole), with the local record
 * each one confirmed; and local events not confirmed by `[customerKey, timestampMs]` or, without a
 * customer, by `[status, seq]` (those states are bounded by the queue). Oldest first, at most
 * `limit`, each event once.
 */
export async function readMerged(db: BufferDatabase, plan: MergedReadPlan): Promise<MergedEntry[]> {
  const entries: MergedEntry[] = [];
  const { keys, name, member, sinceMs, untilMs, statuses, limit } = plan;
  const memberOk = (event: Record<string, unknown>) => member === undefined || event[member[0]] === member[1];
  if (!(sinceMs < untilMs) || limit <= 0) return entries;
  try {
    const tx = db.transaction([EVENTS, MIRROR, META], 'readonly');
    const mirror = tx.objectStore(MIRROR);
    const events = tx.objectStore(EVENTS);

    if (statuses.has('confirmed')) {
      const seen = new Set<string>();
      // One getAll per range (a request per record with a cursor is far slower); with a name
      // filter on a customer's range the limit can only be applied after filtering.
      const readRange = async (index: 'byCustomer' | 'byName' | 'byTime', range: IDBKeyRange, filtered: boolean) => {
        const records = await mirror.index(index).getAll(range, filtered || !Number.isFinite(limit) ? undefined : limit);
        let taken = 0;
        for (const record of records) {
          if (taken >= limit) break;
          if ((name !== undefined && record.name !== name) || !memberOk(record.event) || seen.has(record.id)) continue;
          seen.add(record.id);
          picked.push(record);
          taken++;
        }
      };
      const picked: MirrorRecord[] = [];
      if (keys !== null) {
        for (const key of keys) await readRange(BY_CUSTOMER, customerTimeRange(key, sinceMs, untilMs), name !== undefined || member !== undefined);
      } else if (name !== undefined) {
        await readRange(BY_NAME, IDBKeyRange.bound([name, sinceMs], [name, untilMs], false, true), member !== undefined);
      } else {
        await readRange(BY_TIME, IDBKeyRange.bound(sinceMs, untilMs, false, true), member !== undefined);
      }
      const locals = await Promise.all(picked.map((r) => (r.localExternalId === null ? undefined : events.get(r.localExternalId))));
      picked.forEach((record, i) => void entries.push({ kind: 'mirror', record, local: locals[i] }));
    }

    const localStatuses = [...statuses].filter((s) => s !== 'confirmed');
    if (localStatuses.length > 0) {
      // Events a live flush claim holds are stored `pending` and shown `sending` (see ClaimLease).
      const held = heldIds(await liveClaims(tx.objectStore(META), plan.now));
      const wanted = (r: EventRecord) =>
        statuses.has(r.status) &&
        r.status !== 'confirmed' &&
        (name === undefined || r.name === name) &&
        memberOk(r as unknown as Record<string, unknown>) &&
        r.timestampMs >= sinceMs &&
        r.timestampMs < untilMs;
      if (keys !== null) {
        for (const key of keys) {
          const records = await events.index(BY_CUSTOMER).getAll(customerTimeRange(key, sinceMs, untilMs));
          let taken = 0;
          for (const stored of records) {
            if (taken >= limit) break;
            const record = asShown(stored, held);
            if (!wanted(record)) continue;
            entries.push({ kind: 'local', record });
            taken++;
          }
        }
      } else {
        for (const status of localStatuses) {
          for (const stored of await events.index(BY_STATUS).getAll(statusRange(status))) {
            const record = asShown(stored, held);
            if (wanted(record)) entries.push({ kind: 'local', record });
          }
        }
        // `sending` events are stored pending under a claim (or, from an earlier version, `sending`,
        // read above). Without `pending` in the filter they are read by key: a claim names at most
        // a batch, and the pending range can be the whole backlog.
        if (statuses.has('sending') && !statuses.has('pending')) {
          const claimed = await Promise.all([...held].map((id) => events.get(id)));
          for (const stored of claimed) {
            if (stored?.status !== 'pending') continue;
            const record = asShown(stored, held);
            if (wanted(record)) entries.push({ kind: 'local', record });
          }
        }
      }
    }
    await tx.done;
  } catch (error) {
    throw storageError('query', error);
  }
  entries.sort(compareEntries);
  return entries.length > limit ? entries.slice(0, limit) : entries;
}

function customerTimeRange(key: string, sinceMs: number, untilMs: number): IDBKeyRange {
  return IDBKeyRange.bound([key, sinceMs], [key, untilMs], false, true);
}

function entryTime(entry: MergedEntry): number {
  return entry.record.timestampMs;
}

/** Local creation order for local events (and the ones a server event confirmed), else the server id. */
function entryTie(entry: MergedEntry): string {
  if (entry.kind === 'local') return entry.record.seq;
  return entry.local?.seq ?? entry.record.id;
}

function compareEntries(a: MergedEntry, b: MergedEntry): number {
  const d = entryTime(a) - entryTime(b);
  if (d !== 0) return d;
  const ta = entryTie(a);
  const tb = entryTie(b);
  return ta < tb ? -1 : ta > tb ? 1 : 0;
}

interface Abortable {
  abort(): void;
  done: Promise<void>;
}

function abortQuietly(tx: Abortable | undefined): void {
  if (!tx) return;
  tx.done.catch(() => undefined);
  try {
    tx.abort();
  } catch {
    // Already finished or aborted.
  }
}
