import type { Struct } from 'superstruct';
import { ClosedError, EventValidationError, NoIndexedDBError, StorageError, type PolarEventBufferError } from './errors.js';
import { Emitter } from './emitter.js';
import { env, listen } from './env.js';
import { Flusher, type FlushReport } from './flush/flusher.js';
import { PageExitSender } from './flush/page-exit.js';
import { Scheduler, probeTransport } from './flush/scheduler.js';
import { ServerClock } from './flush/server-clock.js';
import { ChangeChannel } from './coordination/channel.js';
import { withFlushLock } from './coordination/flush-lock.js';
import { argError, enumArg, isObject, numberArg } from './check.js';
import { resolveOptions, type EventBufferOptions, type ResolvedOptions } from './options.js';
import { randomId, uuidv7 } from './ids.js';
import { Connection, connectionWasClosed } from './storage/db.js';
import { append, clearCustomers, countByStatus, editDead, isQuotaError, listByStatus, timeGiven, waitingSnapshot, type InputFailure } from './storage/queue.js';
import type { EventRecord } from './storage/schema.js';
import { BODY_OVERHEAD_BYTES, customerKeyOf, newRecord, toLocalEvent } from './storage/serialize.js';
import { register, type Reader } from './seam.js';
import type { BufferedEvent, BufferEvents, BufferStats, ChangeEvent, EventBuffer } from './types.js';
import { normalizeId, readInput, validateTrackInput } from './validation/validate.js';

/** One track() or trackMany() call: its inputs, read at the call, validated when written. */
interface PendingWrite {
  items: { input: unknown; now: number; seq: string }[];
  many: boolean;
  resolve: (records: EventRecord[]) => void;
  reject: (error: unknown) => void;
}

/** Waiting events the page-exit copy holds: about twice what its 60 KB budget carries (skipping needs more). */
const EXIT_LIMIT = 400;
const leavingError = () =>
  new StorageError('track', 'the page is going away (pagehide): IndexedDB can no longer commit; track before it hides (visibilitychange) or on the next page');

const storageManager = () => env().navigator?.storage;

/**
 * Creates a buffer over one IndexedDB database. Every option is checked here (a wrong one throws a
 * TypeError naming it); nothing is opened until the first call that needs the database.
 * @example
 * const buffer = createEventBuffer({ transport: httpTransport({ baseUrl: '/api/usage' }) });
 * await buffer.track({ name: 'api_call', externalCustomerId: 'user_42', metadata: { tokens: 12 } });
 */
export function createEventBuffer<Schemas extends Record<string, Struct<any, any>> = Record<string, never>>(
  options: EventBufferOptions<Schemas>,
): EventBuffer<Schemas> {
  const resolved = resolveOptions(options);
  resolved.indexedDB ??= (globalThis as { indexedDB?: IDBFactory }).indexedDB!;
  // idb recognises requests and cursors by `instanceof` against the global IndexedDB classes.
  if (!resolved.indexedDB || typeof (globalThis as { IDBRequest?: unknown }).IDBRequest !== 'function') throw new NoIndexedDBError();
  return new PolarEventBuffer(resolved) as unknown as EventBuffer<Schemas>;
}

class PolarEventBuffer {
  readonly #o: ResolvedOptions;
  readonly #connection: Connection;
  readonly #emitter = new Emitter<BufferEvents>();
  readonly #flusher: Flusher;
  readonly #scheduler: Scheduler;
  readonly #channel: ChangeChannel;
  readonly #readers = new Set<Reader>();
  readonly #clock = new ServerClock();
  /** The oldest waiting events as storage last showed them: the `pagehide` last-chance send. */
  readonly #exit = new PageExitSender(EXIT_LIMIT);
  #exitRead: Promise<void> | undefined;
  #exitStale = false;
  #exitKnown = false;
  readonly #owner = randomId();
  readonly #closing = new AbortController();
  readonly #persisted: Promise<boolean | undefined>;
  #closed = false;
  #flushing: Promise<FlushReport> | undefined;
  #queue: PendingWrite[] = [];
  #writing: Promise<void> | undefined;
  #networkBackQueued = false;
  /** The page is going away (pagehide until pageshow): a write started now can no longer commit. */
  #leaving = false;
  #inFlight: PendingWrite[] = [];
  readonly #unwatchExit: () => void;

  constructor(o: ResolvedOptions) {
    this.#o = o;
    // A database the browser wiped under us is news: what it held is gone.
    this.#connection = new Connection(o.indexedDB, o.dbName, (error) => this.#emitter.emit('error', error));
    this.#channel = new ChangeChannel(o.dbName, (event) => {
      if (event.reason !== 'reconcile') this.#readExit();
      this.#emitter.emit('change', { ...event, source: 'remote' });
    });
    this.#flusher = new Flusher(o, this.#connection, this.#clock, this.#owner, {
      dead: (records) => {
        this.#emitter.emit('deadletter', { events: records.map(toLocalEvent) });
        this.#changed('deadletter');
      },
      error: (error) => this.#emitter.emit('error', error as PolarEventBufferError),
      settled: () => this.#changed('flush'),
      written: (records) => this.#exit.update(records),
    });
    const self = this;
    register(this, {
      connection: this.#connection,
      transport: o.transport,
      retry: o.retry,
      clock: o.clock,
      durability: o.durability,
      get closed() {
        return self.#closed;
      },
      changed: (reason) => this.#changed(reason),
      onChange: (listener) => this.#emitter.on('change', listener),
      attach: (reader) => {
        this.#readers.add(reader);
        return () => void this.#readers.delete(reader);
      },
    });
    // Asked once; stats() reports the answer (a browser may grant it only to an installed or bookmarked site).
    const storage = storageManager();
    this.#persisted = o.persist && storage?.persist ? storage.persist().catch(() => false) : Promise.resolve(undefined);
    this.#scheduler = new Scheduler(o, { flush: (reason) => this.#autoFlush(reason), probe: () => probeTransport(o.transport) });
    this.#scheduler.start();
    this.#unwatchExit = this.#watchExit();
  }

  /**
   * After pagehide nothing that needs an IndexedDB answer runs (the document is unloaded or
   * frozen), so a write then would never settle: it is refused at once, and the writes still
   * waiting for their answer are rejected (one already issued may still commit; an externalId makes
   * a retry idempotent). Capture listeners run before the app's own pagehide handlers.
   */
  #watchExit(): () => void {
    const { window, document } = env();
    if (!document) return () => undefined;
    const hide = () => {
      this.#leaving = true;
      this.#connection.release();
      const waiting = [...this.#queue, ...this.#inFlight];
      this.#queue = [];
      for (const w of waiting) w.reject(leavingError());
    };
    const show = () => void (this.#leaving = false);
    const off = [listen(window, 'pagehide', hide, true), listen(window, 'pageshow', show, true)];
    return () => {
      for (const f of off) f();
    };
  }

  // ----- track --------------------------------------------------------------------------------

  /**
   * The call itself only reads the input (a copy, so later changes to it do not count), the time
   * and an id: a burst of calls costs the caller little, and the rest is done while writing.
   */
  async track(input: unknown): Promise<BufferedEvent> {
    this.#open('track');
    const [record] = await this.#write([this.#item(input)], false);
    return toLocalEvent(record!);
  }

  async trackMany(inputs: readonly unknown[]): Promise<BufferedEvent[]> {
    this.#open('trackMany');
    if (!Array.isArray(inputs)) throw new EventValidationError([{ path: [], message: `Expected an array of events, but received ${typeof inputs}` }]);
    const items: PendingWrite['items'] = [];
    const failures: InputFailure[] = [];
    inputs.forEach((input, index) => {
      try {
        items.push(this.#item(input));
      } catch (error) {
        for (const f of (error as EventValidationError).failures) failures.push({ ...f, index });
      }
    });
    if (failures.length > 0) throw this.#refuse({ many: true }, failures);
    return items.length ? (await this.#write(items, true)).map(toLocalEvent) : [];
  }

  #item(input: unknown): PendingWrite['items'][number] {
    const now = this.#o.clock.now();
    return { input: readInput(input), now, seq: uuidv7(now) };
  }

  /** Validates one call's inputs into records; any invalid input fails the whole call, alone. */
  #build({ items, many }: PendingWrite): EventRecord[] {
    const { schemas, defaults, maxBatchBytes } = this.#o;
    const failures: InputFailure[] = [];
    // The wire body is fixed here: a timestamp in the server's future is clamped once, for every send.
    const limit = this.#clock.clampLimit(this.#o.clock.now());
    const records = items.map(({ input, now, seq }, index) => {
      try {
        const valid = validateTrackInput(input, { schemas, defaults, now, copied: true });
        const record = newRecord(valid, seq, now, limit);
        if (valid.timestamp) timeGiven.add(record);
        if (record.bytes + BODY_OVERHEAD_BYTES > maxBatchBytes) {
          throw new EventValidationError([{ path: ['metadata'], message: `${record.bytes} bytes on the wire, over maxBatchBytes (${maxBatchBytes})` }]);
        }
        return record;
      } catch (error) {
        if (!(error instanceof EventValidationError)) throw error;
        for (const f of error.failures) failures.push({ ...f, index });
        return undefined as unknown as EventRecord;
      }
    });
    if (failures.length > 0) throw this.#refuse({ many }, failures);
    return records;
  }

  /** A call refused by what storage holds (a taken externalId, a parent loop). */
  #refuse({ many }: Pick<PendingWrite, 'many'>, failures: InputFailure[]): EventValidationError {
    return new EventValidationError(failures.map(({ index, path, message }) => ({ path: many ? [String(index), ...path] : path, message })));
  }

  /** Every call made before the write starts joins one transaction and resolves on its `complete`. */
  #write(items: PendingWrite['items'], many: boolean): Promise<EventRecord[]> {
    if (this.#leaving) return Promise.reject(leavingError());
    return new Promise((resolve, reject) => {
      this.#queue.push({ items, many, resolve, reject });
      this.#writing ??= Promise.resolve().then(() => this.#drain());
    });
  }

  async #drain(): Promise<void> {
    // `#writing` is cleared in the same microtask as the last empty-queue check, so a write queued
    // after it starts a new loop instead of waiting forever.
    try {
      let relieved = false;
      let reopened = false;
      while (this.#queue.length > 0) {
        const group = this.#queue;
        this.#queue = [];
        this.#inFlight = group;
        try {
          const { results, waiting } = await append(
            await this.#connection.get(),
            group,
            (w) => this.#build(w),
            (w, failures) => this.#refuse(w, failures),
            this.#o.maxQueueSize,
            this.#o.durability,
            this.#o.clock.now(),
          );
          this.#connection.known = waiting;
          results.forEach((r, i) => {
            if (r instanceof Error) group[i]!.reject(r);
            else {
              group[i]!.resolve(r);
              this.#exit.add(r.filter((record) => record.status === 'pending'));
            }
          });
          // The first write reads what earlier visits left waiting; later ones only add theirs.
          if (!this.#exitKnown) this.#readExit();
          if (results.some((r) => !(r instanceof Error))) {
            this.#changed('track');
            if (waiting >= this.#o.batchSize) this.#scheduler.trigger('batch-full');
          }
        } catch (error) {
          // The browser closed the connection under us (the Connection reopens on the next use): once more.
          if (!reopened && connectionWasClosed(error)) {
            reopened = true;
            this.#queue.unshift(...group);
            continue;
          }
          // A full disk: an open mirror frees what the server can give back, and the write is tried once more.
          if (!relieved && isQuotaError(error)) {
            relieved = true;
            let freed = 0;
            for (const reader of this.#readers) freed += await reader.relieve().catch(() => 0);
            if (freed > 0) {
              this.#emitter.emit('error', new StorageError('track', `quota reached; ${freed} mirrored events removed to make room`));
              this.#changed('clear');
              this.#queue.unshift(...group);
              continue;
            }
          }
          for (const w of group) w.reject(error);
        }
      }
    } finally {
      this.#inFlight = [];
      this.#writing = undefined;
    }
  }

  // ----- flush --------------------------------------------------------------------------------

  async flush(): Promise<FlushReport> {
    this.#open('flush');
    this.#flusher.pausedUntil = 0;
    return this.#runFlush({}, true);
  }

  #autoFlush(reason: string): void {
    if (this.#closed || (this.#flusher.pausedUntil > this.#o.clock.now() && reason !== 'online')) return;
    // Only what starts now gets out; the events stay pending until an answer is stored.
    if (reason === 'pagehide') this.#exit.send(this.#o.transport);
    if (reason === 'online' && this.#flushing) {
      // The running flush claims without knowing the network is back: one more flush after it.
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
    const keepalive = reason === 'hidden' || reason === 'pagehide';
    this.#runFlush(keepalive ? { keepalive } : { networkBack: reason === 'online' }, false).catch((error) => this.#emitter.emit('error', error));
  }

  /** At most one flush per database: one promise in this page, a lock across tabs. */
  #runFlush(mode: { keepalive?: boolean; networkBack?: boolean }, explicit: boolean): Promise<FlushReport> {
    if (this.#flushing) return this.#flushing;
    const o = this.#o;
    const run = (async () => {
      const flush = (signal: AbortSignal) => this.#flusher.run(signal, mode);
      const outcome = await withFlushLock(o.indexedDB, o.dbName, flush, {
        signal: this.#closing.signal,
        connection: this.#connection,
        owner: this.#owner,
        duration: o.leaseDuration,
        clock: o.clock,
      }).finally(() => this.#readExit());
      if (!outcome.ran) {
        const { pending, sending } = await this.stats();
        return { sent: 0, duplicates: 0, deadLettered: 0, remaining: pending + sending, requests: 0, stoppedBy: 'locked' as const };
      }
      const report = outcome.value;
      this.#connection.known = report.remaining;
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

  // ----- inspection, dead letters, clear ------------------------------------------------------

  async stats(): Promise<BufferStats> {
    this.#open('stats');
    const { pending, sending, sent, confirmed, dead, mirrored } = await countByStatus(await this.#connection.get(), this.#o.clock.now());
    const stats: BufferStats = { pending, sending, sent, confirmed, dead, mirrored };
    this.#connection.known = pending + sending;
    const persisted = await this.#persisted;
    if (persisted !== undefined) {
      stats.persisted = persisted;
      const estimate = await storageManager()
        ?.estimate?.()
        .catch(() => undefined);
      if (estimate?.usage !== undefined) stats.usage = estimate.usage;
      if (estimate?.quota !== undefined) stats.quota = estimate.quota;
    }
    return stats;
  }

  async deadLetters(options: { limit?: number } = {}): Promise<BufferedEvent[]> {
    this.#open('deadLetters');
    const limit = numberArg('limit', options.limit, [1, Number.MAX_SAFE_INTEGER, 1000, 1]);
    return (await listByStatus(await this.#connection.get(), 'dead', limit)).map(toLocalEvent);
  }

  async retryDeadLetters(externalIds?: string[]): Promise<number> {
    const count = await this.#editDead('retryDeadLetters', externalIds, true);
    if (count > 0) this.#scheduler.trigger('retry');
    return count;
  }

  purgeDeadLetters(externalIds?: string[]): Promise<number> {
    return this.#editDead('purgeDeadLetters', externalIds, false);
  }

  async #editDead(operation: string, ids: unknown, revive: boolean): Promise<number> {
    this.#open(operation);
    if (ids !== undefined && (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string'))) throw argError('externalIds', 'an array of strings', ids);
    const count = await editDead(await this.#connection.get(), ids as string[] | undefined, revive, this.#o.durability);
    if (count > 0) this.#changed(revive ? 'retry' : 'purge');
    return count;
  }

  async clear(ref?: { externalCustomerId?: string; customerId?: string }): Promise<void> {
    this.#open('clear');
    if (ref !== undefined && !isObject(ref)) throw argError('clear()', 'nothing, { externalCustomerId } or { customerId }', ref);
    let keys: string[] | undefined;
    if (ref?.externalCustomerId !== undefined || ref?.customerId !== undefined) {
      keys = [
        ref.externalCustomerId !== undefined && customerKeyOf({ externalCustomerId: ref.externalCustomerId }),
        ref.customerId !== undefined && customerKeyOf({ customerId: normalizeId(ref.customerId) }),
      ].filter((k): k is string => !!k);
    }
    // The storage verb adds the customer's other references a reconcile saw.
    await clearCustomers(await this.#connection.get(), keys, this.#o.durability);
    // Nothing cleared may leave at pagehide (a sign-out); the others come back with the read.
    this.#exit.replace([]);
    this.#changed('clear');
  }

  on<K extends keyof BufferEvents>(eventName: K, handler: (payload: BufferEvents[K]) => void): () => void {
    enumArg('eventName', eventName, ['flush', 'deadletter', 'error', 'change']);
    if (typeof handler !== 'function') throw argError('handler', 'a function', handler);
    return this.#emitter.on(eventName, handler);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unwatchExit();
    this.#scheduler.stop();
    this.#channel.close();
    // Stops backoff waits at once; a request in flight is settled.
    this.#closing.abort(new ClosedError('flush'));
    await this.#writing;
    await this.#flushing?.catch(() => undefined);
    await this.#exitRead;
    for (const reader of [...this.#readers]) await reader.close();
    await this.#connection.close();
    this.#emitter.clear();
  }

  #changed(reason: ChangeEvent['reason']): void {
    // track and flush keep the page-exit copy up to date themselves; a reconcile only re-queues
    // delivered events (the next flush resends them); the rest moved events anyhow.
    if (reason !== 'track' && reason !== 'flush' && reason !== 'reconcile') this.#readExit();
    this.#emitter.emit('change', { reason, source: 'local' });
    this.#channel.post({ reason });
  }

  /** Reads storage's waiting events into the page-exit copy (one read at a time; one more if asked meanwhile). */
  #readExit(): void {
    if (this.#closed) return;
    if (this.#exitRead) {
      this.#exitStale = true;
      return;
    }
    this.#exitKnown = true;
    const read = async () => {
      do {
        this.#exitStale = false;
        const db = await this.#connection.get();
        this.#exit.replace(await waitingSnapshot(db, EXIT_LIMIT));
      } while (this.#exitStale && !this.#closed);
    };
    const done = () => void (this.#exitRead = undefined);
    this.#exitRead = read().then(done, done);
  }

  #open(operation: string): void {
    if (this.#closed) throw new ClosedError(operation);
  }
}
