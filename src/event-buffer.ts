import type { Struct } from 'superstruct';
import { ClosedError, EventValidationError, NoIndexedDBError, StorageError, type PolarEventBufferError } from './errors.js';
import { Emitter } from './emitter.js';
import { Flusher, type FlushReport } from './flush/flusher.js';
import { PageExitSender } from './flush/page-exit.js';
import { Scheduler, probeTransport } from './flush/scheduler.js';
import { ServerClock } from './flush/server-clock.js';
import { ChangeChannel } from './coordination/channel.js';
import { withFlushLock, type LeaseOptions } from './coordination/flush-lock.js';
import { resolveOptions, type EventBufferOptions, type ResolvedOptions } from './options.js';
import { randomId, uuidv7 } from './ids.js';
import { Connection } from './storage/db.js';
import {
  appendGroups,
  clearCustomer,
  countByStatus,
  listByStatus,
  purgeDead,
  readMeta,
  reviveDead,
  type AppendOutcome,
} from './storage/queue-store.js';
import type { EventRecord } from './storage/schema.js';
import { BODY_OVERHEAD_BYTES, customerKeyOf, newRecord, toLocalEvent, toWire } from './storage/serialize.js';
import { register, type Reader } from './seam.js';
import type {
  BufferedEvent,
  BufferEvents,
  BufferStats,
  ChangeEvent,
  EventBuffer,
  TrackInputFor,
} from './types.js';
import { validateTrackInput } from './validation/validate.js';

interface PendingWrite {
  records: EventRecord[];
  resolve: (records: EventRecord[]) => void;
  reject: (error: unknown) => void;
}

/**
 * Creates a buffer over one IndexedDB database. Every option is checked here: a wrong one throws a
 * TypeError naming it. Nothing is opened until the first call that needs the database.
 *
 * @example
 * const buffer = createEventBuffer({ transport: httpTransport({ baseUrl: '/api/usage' }) });
 * await buffer.track({ name: 'api_call', externalCustomerId: 'user_42', metadata: { tokens: 12 } });
 */
export function createEventBuffer<Schemas extends Record<string, Struct<any, any>> = Record<string, never>>(
  options: EventBufferOptions<Schemas>,
): EventBuffer<Schemas> {
  const resolved = resolveOptions(options);
  if (!resolved.indexedDB) {
    const global = (globalThis as { indexedDB?: IDBFactory }).indexedDB;
    if (!global) throw new NoIndexedDBError();
    resolved.indexedDB = global;
  }
  // idb recognises requests and cursors by `instanceof` against the global IndexedDB classes.
  if (typeof (globalThis as { IDBRequest?: unknown }).IDBRequest !== 'function') throw new NoIndexedDBError();
  return new PolarEventBuffer<Schemas>(resolved);
}

class PolarEventBuffer<Schemas extends Record<string, Struct<any, any>>> implements EventBuffer<Schemas> {
  readonly #options: ResolvedOptions;
  readonly #connection: Connection;
  readonly #emitter = new Emitter<BufferEvents>();
  readonly #flusher: Flusher;
  readonly #scheduler: Scheduler;
  /** Open mirrors (`./mirror`), closed before the database. */
  readonly #readers = new Set<Reader>();
  readonly #channel: ChangeChannel;
  readonly #serverClock = new ServerClock();
  /** What this page tracked and no flush has reported sent: the `pagehide` last-chance send. */
  readonly #exit = new PageExitSender();
  /** The IndexedDB flush lease, used where Web Locks are missing. */
  readonly #lease: LeaseOptions;
  readonly #closing = new AbortController();
  #closed = false;
  #flushing: Promise<FlushReport> | undefined;
  #writeQueue: PendingWrite[] = [];
  /** A network-back flush waits for the flush that was running when `online` came. */
  #networkBackQueued = false;
  /** The write loop while it runs (close() waits for it). */
  #writing: Promise<void> | undefined;

  constructor(options: ResolvedOptions) {
    this.#options = options;
    this.#connection = new Connection(options.indexedDB, options.dbName);
    const owner = randomId();
    this.#lease = { connection: this.#connection, owner, duration: options.leaseDuration, clock: options.clock };
    this.#channel = new ChangeChannel(options.dbName, (event) => this.#emitter.emit('change', { ...event, source: 'remote' }));
    this.#flusher = new Flusher(options, this.#connection, this.#serverClock, owner, {
      onDeadLetter: (records) => {
        this.#emitter.emit('deadletter', { events: records.map((r) => toLocalEvent(r)) });
        this.#changed('deadletter');
      },
      onError: (error) => this.#emitter.emit('error', error as PolarEventBufferError),
      onSettled: () => this.#changed('flush'),
    });
    const buffer = this;
    register(this, {
      connection: this.#connection,
      transport: options.transport,
      retry: options.retry,
      clock: options.clock,
      durability: options.durability,
      get closed() {
        return buffer.#closed;
      },
      changed: (reason) => this.#changed(reason),
      onChange: (listener) => this.#emitter.on('change', listener),
      attach: (reader) => {
        this.#readers.add(reader);
        return () => void this.#readers.delete(reader);
      },
    });
    this.#scheduler = new Scheduler(options, {
      flush: (reason) => this.#autoFlush(reason),
      probe: () => probeTransport(options.transport),
    });
    this.#scheduler.start();
  }

  // ----- track ------------------------------------------------------------------------------

  async track(input: TrackInputFor<Record<string, never>>): Promise<BufferedEvent> {
    this.#assertOpen('track');
    const [record] = await this.#write([this.#prepare(input, undefined)]);
    return toLocalEvent(record!);
  }

  async trackMany(inputs: readonly TrackInputFor<Record<string, never>>[]): Promise<BufferedEvent[]> {
    this.#assertOpen('trackMany');
    if (!Array.isArray(inputs)) {
      throw new EventValidationError([{ path: [], message: `Expected an array of events, but received ${typeof inputs}` }]);
    }
    if (inputs.length === 0) return [];
    const records: EventRecord[] = [];
    const failures: { path: string[]; message: string }[] = [];
    inputs.forEach((input, index) => {
      try {
        records.push(this.#prepare(input, index));
      } catch (error) {
        if (!(error instanceof EventValidationError)) throw error;
        for (const f of error.failures) failures.push({ path: [String(index), ...f.path], message: f.message });
      }
    });
    if (failures.length > 0) throw new EventValidationError(failures);
    const stored = await this.#write(records);
    return stored.map((r) => toLocalEvent(r));
  }

  /** Validates (synchronously) and builds the record; an invalid input fails alone, before any write. */
  #prepare(input: unknown, index: number | undefined): EventRecord {
    const o = this.#options;
    const now = o.clock.now();
    const valid = validateTrackInput(input, { schemas: o.schemas, defaults: o.defaults, now });
    const record = newRecord(valid, uuidv7(now), now);
    if (record.bytes + BODY_OVERHEAD_BYTES > o.maxBatchBytes) {
      throw new EventValidationError(
        [
          {
            path: ['metadata'],
            message: `The event is ${record.bytes} bytes on the wire, more than maxBatchBytes (${o.maxBatchBytes}) allows in one request; make its metadata smaller or raise maxBatchBytes`,
          },
        ],
        index === undefined ? {} : { index },
      );
    }
    return record;
  }

  /**
   * Write coalescing: calls that arrive while a write is being prepared or committed join the next
   * transaction; each resolves after that transaction's `complete`.
   */
  #write(records: EventRecord[]): Promise<EventRecord[]> {
    return new Promise<EventRecord[]>((resolve, reject) => {
      this.#writeQueue.push({ records, resolve, reject });
      if (!this.#writing) {
        // Start on a microtask so that every call made in this task joins the first transaction.
        this.#writing = Promise.resolve().then(() => this.#drainWrites());
      }
    });
  }

  async #drainWrites(): Promise<void> {
    // `#writing` is cleared in the same microtask as the loop's last empty-queue check (no await
    // in between): a write queued after that check (e.g. by a caller resuming from this batch)
    // must see no running loop and start one, or it would wait forever.
    try {
      let quotaRelieved = false;
      while (this.#writeQueue.length > 0) {
        const group = this.#writeQueue;
        this.#writeQueue = [];
        let outcomes: AppendOutcome[];
        let waiting = 0;
        try {
          const db = await this.#connection.get();
          ({ outcomes, waiting } = await appendGroups(
            db,
            group.map((w) => ({ records: w.records })),
            { maxQueueSize: this.#options.maxQueueSize, durability: this.#options.durability, now: this.#options.clock.now() },
          ));
        } catch (error) {
          // A full disk: the mirror (which the server can give back) makes room before any
          // tracked event is refused, and the same write is tried once more.
          if (!quotaRelieved && isQuotaError(error)) {
            quotaRelieved = true;
            const freed = await this.#relieveQuota().catch(() => 0);
            if (freed > 0) {
              this.#writeQueue.unshift(...group);
              continue;
            }
          }
          for (const w of group) w.reject(error);
          continue;
        }
        outcomes.forEach((outcome, i) => (outcome.ok ? group[i]!.resolve(outcome.records) : group[i]!.reject(outcome.error)));
        for (const outcome of outcomes) if (outcome.ok) this.#exit.remember(outcome.records);
        if (outcomes.some((o) => o.ok)) {
          this.#changed('track');
          if (waiting >= this.#options.batchSize) this.#scheduler.trigger('batch-full');
        }
      }
    } finally {
      this.#writing = undefined;
    }
  }

  /** Only an open mirror can free space: what it holds the server can give back. */
  async #relieveQuota(): Promise<number> {
    let freed = 0;
    for (const reader of this.#readers) freed += await reader.relieve();
    if (freed > 0) {
      this.#emitter.emit(
        'error',
        new StorageError(
          'track',
          `the storage quota was reached; ${freed} mirrored records (the oldest half of the mirror, which reconcile() can pull again) were removed to make room, and no tracked event was touched. Free space or lower \`retention\` to avoid this.`,
        ),
      );
      this.#changed('clear');
    }
    return freed;
  }

  // ----- flush ------------------------------------------------------------------------------

  async flush(): Promise<FlushReport> {
    this.#assertOpen('flush');
    this.#flusher.resume();
    return this.#runFlush({});
  }

  #autoFlush(reason: string): void {
    if (this.#closed) return;
    if (this.#flusher.pausedUntil > this.#options.clock.now() && reason !== 'online') return;
    if (reason === 'pagehide') {
      // Only what starts now gets out; the flush below finishes only if the page lives on (bfcache).
      const limit = this.#serverClock.clampLimit(this.#options.clock.now());
      this.#exit.send(this.#options.transport, (r) => toWire(r, limit !== null && r.timestampMs > limit ? limit : r.timestampMs));
    }
    const keepalive = reason === 'hidden' || reason === 'pagehide';
    if (reason === 'online' && this.#flushing) {
      // A flush is running, and it claims without knowing that the network is back: once it ends,
      // one more flush claims what waited only for the network (one, however many `online`s came).
      if (!this.#networkBackQueued) {
        this.#networkBackQueued = true;
        const after = () => {
          this.#networkBackQueued = false;
          this.#autoFlush('online');
        };
        this.#flushing.then(after, after);
      }
      return;
    }
    // After `online` (and a successful reachability probe), events that were only waiting for the
    // network are due at once; a wait the server asked for (Retry-After) still holds.
    this.#runFlush(keepalive ? { keepalive } : reason === 'online' ? { networkBack: true } : {}, false).catch((error) => this.#emitter.emit('error', error));
  }

  /** At most one flush per database: one promise inside this page, a Web Lock across tabs. */
  #runFlush(options: { keepalive?: boolean; networkBack?: boolean }, explicit = true): Promise<FlushReport> {
    if (this.#flushing) return this.#flushing;
    const mark = this.#exit.mark();
    const run = (async () => {
      const outcome = await withFlushLock(
        this.#options.indexedDB,
        this.#options.dbName,
        () => this.#flusher.run(this.#closing.signal, options),
        this.#lease,
      );
      if (!outcome.ran) {
        const stats = await this.stats();
        return { sent: 0, duplicates: 0, deadLettered: 0, remaining: stats.pending + stats.sending, requests: 0, stoppedBy: 'locked' as const };
      }
      const report = outcome.value;
      if (report.remaining === 0) this.#exit.forgetUpTo(mark);
      // A timer tick that found nothing to do is not news; an explicit flush() always reports.
      if (explicit || report.requests > 0 || report.deadLettered > 0) this.#emitter.emit('flush', report);
      return report;
    })();
    this.#flushing = run;
    const clear = () => {
      if (this.#flushing === run) this.#flushing = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  // ----- inspection and dead letters -------------------------------------------------------

  async stats(): Promise<BufferStats> {
    this.#assertOpen('stats');
    const counts = await countByStatus(await this.#connection.get(), this.#options.clock.now());
    return {
      pending: counts.pending,
      sending: counts.sending,
      sent: counts.sent,
      confirmed: counts.confirmed,
      dead: counts.dead,
      mirrored: counts.mirrored,
    };
  }

  async deadLetters(options: { limit?: number } = {}): Promise<BufferedEvent[]> {
    this.#assertOpen('deadLetters');
    const limit = options.limit ?? 1000;
    if (!Number.isInteger(limit) || limit < 1) throw new TypeError('Expected `limit` to be a positive integer.');
    const records = await listByStatus(await this.#connection.get(), 'dead', limit);
    return records.map((r) => toLocalEvent(r));
  }

  async retryDeadLetters(externalIds?: string[]): Promise<number> {
    this.#assertOpen('retryDeadLetters');
    checkIds(externalIds);
    const revived = await reviveDead(await this.#connection.get(), externalIds, { durability: this.#options.durability });
    if (revived.length > 0) {
      this.#changed('retry');
      this.#scheduler.trigger('retry');
    }
    return revived.length;
  }

  async purgeDeadLetters(externalIds?: string[]): Promise<number> {
    this.#assertOpen('purgeDeadLetters');
    checkIds(externalIds);
    const purged = await purgeDead(await this.#connection.get(), externalIds, this.#options.durability);
    if (purged.length > 0) this.#changed('purge');
    return purged.length;
  }

  async clear(ref?: { externalCustomerId?: string; customerId?: string }): Promise<void> {
    this.#assertOpen('clear');
    if (ref !== undefined && (typeof ref !== 'object' || ref === null)) {
      throw new TypeError('Expected clear() to get nothing, or { externalCustomerId } or { customerId }.');
    }
    const db = await this.#connection.get();
    let keys: string[] | undefined;
    if (ref && (ref.externalCustomerId !== undefined || ref.customerId !== undefined)) {
      // The customer under every reference the server showed us for it (both, once linked).
      const given = [
        ...(ref.externalCustomerId !== undefined ? [customerKeyOf({ externalCustomerId: ref.externalCustomerId })] : []),
        ...(ref.customerId !== undefined ? [customerKeyOf({ customerId: ref.customerId })] : []),
      ];
      // `alias:<key>`: the other keys a reconcile saw for that customer.
      const aliases = await Promise.all(given.map(async (key) => [key, ...((await readMeta<string[]>(db, `alias:${key}`)) ?? [])]));
      keys = [...new Set(aliases.flat())];
    }
    await clearCustomer(db, keys, this.#options.durability);
    this.#exit.forgetAll();
    this.#changed('clear');
  }

  on<K extends keyof BufferEvents>(eventName: K, handler: (payload: BufferEvents[K]) => void): () => void {
    if (!['flush', 'deadletter', 'error', 'change'].includes(eventName)) {
      throw new TypeError(`Unknown event "${String(eventName)}": expected flush, deadletter, error or change.`);
    }
    if (typeof handler !== 'function') throw new TypeError('Expected the handler to be a function.');
    return this.#emitter.on(eventName, handler);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#scheduler.stop();
    this.#channel.close();
    // Stop backoff waits at once; a request in flight finishes and is settled.
    this.#closing.abort(new ClosedError('flush'));
    await this.#writing;
    await this.#flushing?.catch(() => undefined);
    for (const reader of [...this.#readers]) await reader.close();
    await this.#connection.close();
    this.#emitter.clear();
  }

  #changed(reason: ChangeEvent['reason']): void {
    this.#emitter.emit('change', { reason, source: 'local' });
    this.#channel.post({ reason });
  }

  #assertOpen(operation: string): void {
    if (this.#closed) throw new ClosedError(operation);
  }
}

function checkIds(ids: unknown): void {
  if (ids !== undefined && (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string'))) {
    throw new TypeError('Expected an array of externalId strings (or nothing, for all dead letters).');
  }
}

function isQuotaError(error: unknown): boolean {
  return error instanceof StorageError && (error.cause as { name?: unknown } | undefined)?.name === 'QuotaExceededError';
}
