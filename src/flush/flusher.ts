import { StorageError, TransportError, type ValidationDetail } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { Connection } from '../storage/db.js';
import { claimBatch, countWaiting, settle, type Settlement } from '../storage/queue-store.js';
import type { EventRecord } from '../storage/schema.js';
import { fingerprintOf, toWire } from '../storage/serialize.js';
import { backoffDelay, withRetry } from './retry-policy.js';
import type { ServerClock } from './server-clock.js';

/**
 * What one flush did.
 * @example
 * const { sent, remaining, stoppedBy } = await buffer.flush();
 * if (remaining > 0) console.warn(`${remaining} events wait (${stoppedBy})`);
 */
export interface FlushReport {
  /** Events the server acknowledged (inserted or counted as duplicates). */
  sent: number;
  /** Of those, events the server already held (its `duplicates`). */
  duplicates: number;
  /** Events set aside in the dead letters by this flush. */
  deadLettered: number;
  /** Events still waiting (pending or sending) when the flush ended. */
  remaining: number;
  /** Requests made (tries included). */
  requests: number;
  /** Why the flush stopped before the queue was empty, if it did. */
  stoppedBy?: 'retries-exhausted' | 'unauthorized' | 'rejected' | 'retry-after' | 'closed' | 'not-due' | 'locked';
}

export interface FlushHooks {
  onDeadLetter(records: EventRecord[]): void;
  onError(error: unknown): void;
  onSettled(): void;
}

/** Keepalive requests share a 64 KiB body budget in browsers. */
export const KEEPALIVE_MAX_BYTES = 60_000;

const AUTH_PAUSE_MS = 60_000;
const MAX_TIMESTAMP_RETRIES = 3;

/**
 * One flush cycle, repeated while due events remain: claim a batch (leased) → send with retry →
 * settle. It never holds more than one batch in memory.
 */
export class Flusher {
  readonly #options: ResolvedOptions;
  readonly #connection: Connection;
  readonly #hooks: FlushHooks;
  readonly #owner: string;
  readonly #serverClock: ServerClock;
  #pausedUntil = 0;
  readonly #requests = new AbortController();

  constructor(options: ResolvedOptions, connection: Connection, serverClock: ServerClock, owner: string, hooks: FlushHooks) {
    this.#options = options;
    this.#connection = connection;
    this.#serverClock = serverClock;
    this.#owner = owner;
    this.#hooks = hooks;
  }

  /** Auto flushes skip while paused after a 401/403; an explicit flush() always tries. */
  get pausedUntil(): number {
    return this.#pausedUntil;
  }

  resume(): void {
    this.#pausedUntil = 0;
  }

  /** Aborts requests in flight (their batches stay leased and return to waiting when the lease ends). */
  abortRequests(): void {
    this.#requests.abort();
  }

  async run(signal: AbortSignal, options: { keepalive?: boolean; maxBatches?: number; networkBack?: boolean } = {}): Promise<FlushReport> {
    const report: FlushReport = { sent: 0, duplicates: 0, deadLettered: 0, remaining: 0, requests: 0 };
    const o = this.#options;
    const maxBatchBytes = options.keepalive ? Math.min(o.maxBatchBytes, KEEPALIVE_MAX_BYTES) : o.maxBatchBytes;
    let batches = 0;
    let claims = 0;
    for (;;) {
      if (signal.aborted) {
        report.stoppedBy = 'closed';
        break;
      }
      if (options.maxBatches !== undefined && batches >= options.maxBatches) break;
      const db = await this.#connection.get();
      const claim = await claimBatch(db, {
        // Expired leases (a crashed holder's) are looked for once per flush, not once per batch.
        reclaim: claims++ === 0,
        now: o.clock.now(),
        batchSize: o.batchSize,
        maxBatchBytes,
        ...(maxBatchBytes < o.maxBatchBytes ? { configuredMaxBatchBytes: o.maxBatchBytes } : {}),
        leaseDuration: o.leaseDuration,
        owner: this.#owner,
        durability: o.durability,
        ...(options.networkBack ? { networkBack: true } : {}),
      });
      if (claim.corrupted.length > 0) {
        this.#hooks.onError(
          new StorageError(
            'flush (claim)',
            `${claim.corrupted.length} corrupted record(s) in the queue (${claim.corrupted.map((r) => `${String(r.externalId)}: ${r.error}`).join('; ')}); ` +
              'they were moved to the dead letters and the other events go on. Inspect them with deadLetters() and purge them.',
          ),
        );
      }
      const setAside = [...claim.dead, ...claim.oversized, ...claim.corrupted];
      if (setAside.length > 0) {
        report.deadLettered += setAside.length;
        this.#hooks.onDeadLetter(setAside);
      }
      if (claim.batch.length === 0) {
        if (claim.nextDueAt !== null) report.stoppedBy = 'not-due';
        if (setAside.length > 0) continue;
        break;
      }
      batches++;
      const stop = await this.#sendAndSettle(claim.batch, signal, report, options.keepalive ?? false);
      this.#hooks.onSettled();
      if (stop) {
        report.stoppedBy = stop;
        break;
      }
    }
    try {
      report.remaining = await countWaiting(await this.#connection.get());
    } catch (error) {
      if (!signal.aborted) throw error;
    }
    return report;
  }

  /** Sends one group of records and settles them; splits on 413 and on a 422 that names no event. */
  async #sendAndSettle(
    records: EventRecord[],
    signal: AbortSignal,
    report: FlushReport,
    keepalive: boolean,
  ): Promise<FlushReport['stoppedBy'] | undefined> {
    const o = this.#options;
    const clamp = this.#serverClock.clampLimit(o.clock.now());
    const wireTimes = records.map((r) => (clamp !== null && r.timestampMs > clamp ? clamp : r.timestampMs));
    const wire = records.map((r, i) => toWire(r, wireTimes[i]));
    try {
      const result = await withRetry(
        async () => {
          report.requests++;
          try {
            // The request itself is not cut by close(): it finishes (or times out) and is settled.
            const requestSignal = this.#requests.signal;
            const answer = await o.transport.ingest(wire, keepalive ? { signal: requestSignal, keepalive: true } : { signal: requestSignal });
            if (answer.serverDate) this.#serverClock.observe(answer.serverDate, o.clock.now());
            return answer;
          } catch (error) {
            if (error instanceof TransportError && error.serverDate) this.#serverClock.observe(error.serverDate, o.clock.now());
            throw error;
          }
        },
        o.retry,
        {
          signal,
          clock: o.clock,
          onRetry: ({ error }) => this.#hooks.onError(error),
        },
      );
      const allDuplicates = result.inserted === 0 && result.duplicates >= records.length;
      const settlements: Settlement[] = records.map((r, i) => ({
        externalId: r.externalId,
        to: 'sent',
        record: r,
        ...(allDuplicates && r.sentAt !== null ? { heldByServer: true } : {}),
        ...(wireTimes[i] !== r.timestampMs
          ? { fingerprint: fingerprintOf({ ...r, timestampMs: wireTimes[i]! }) }
          : {}),
      }));
      await this.#settle(settlements);
      report.sent += records.length;
      report.duplicates += Math.min(result.duplicates, records.length);
      return undefined;
    } catch (error) {
      if (signal.aborted) {
        // close(): the batch goes back to waiting as it was, due at once.
        await this.#release(records, { countAttempt: false, nextAttemptAt: 0, error: null });
        return 'closed';
      }
      return this.#onFailure(records, error, signal, report, keepalive, wireTimes);
    }
  }

  async #onFailure(
    records: EventRecord[],
    error: unknown,
    signal: AbortSignal,
    report: FlushReport,
    keepalive: boolean,
    wireTimes: number[],
  ): Promise<FlushReport['stoppedBy'] | undefined> {
    const o = this.#options;
    const now = o.clock.now();
    const message = error instanceof Error ? error.message : String(error);
    if (!(error instanceof TransportError)) {
      // A transport that threw something else (a bug in a custom transport): keep the events.
      this.#hooks.onError(error);
      await this.#release(records, { countAttempt: true, nextAttemptAt: now + this.#backoff(records), error: message });
      return 'retries-exhausted';
    }
    const status = error.status;
    if (status === 422) {
      const named = namedIndexes(error.detail, records.length);
      if (named.size > 0) {
        // A future timestamp means our idea of the server's clock is too late: learn it from this
        // answer, and resend every event whose timestamp the next send will clamp lower than this
        // one's (a valid event is never dead-lettered for our clock's fault).
        if (error.serverDate && [...named.values()].some((d) => d.some(isFutureTimestamp))) {
          this.#serverClock.correct(error.serverDate, now);
        }
        const limit = this.#serverClock.clampLimit(now);
        const dead: Settlement[] = [];
        const again: EventRecord[] = [];
        const clockRejected: EventRecord[] = [];
        records.forEach((r, i) => {
          const details = named.get(i);
          if (!details) again.push(r);
          else if (onlyFutureTimestamp(details) && (r.attempts < MAX_TIMESTAMP_RETRIES || (limit !== null && wireTimes[i]! > limit))) {
            clockRejected.push(r);
          }
          else dead.push({ externalId: r.externalId, to: 'dead', error: serverReason(details) });
        });
        const written = await this.#settle(dead);
        const deadRecords = written.filter((r) => r.status === 'dead');
        report.deadLettered += deadRecords.length;
        if (deadRecords.length > 0) this.#hooks.onDeadLetter(deadRecords);
        // The others were refused only because they shared the batch: resend them at once.
        await this.#release(again, { countAttempt: false, nextAttemptAt: 0, error: null });
        // A future timestamp is a clock problem, not a bad event: the 422's Date taught us the
        // server's clock, so the next send clamps it.
        await this.#release(clockRejected, { countAttempt: true, nextAttemptAt: 0, error: message });
        return undefined;
      }
      if (records.length === 1) {
        const dead = await this.#settle([{ externalId: records[0]!.externalId, to: 'dead', error: serverReason(error.detail ?? [], message) }]);
        report.deadLettered += dead.length;
        if (dead.length > 0) this.#hooks.onDeadLetter(dead);
        return undefined;
      }
      return this.#bisect(records, signal, report, keepalive);
    }
    if (status === 413) {
      if (records.length === 1) {
        const dead = await this.#settle([
          { externalId: records[0]!.externalId, to: 'dead', error: `The server refused the event as too large (413): ${message}` },
        ]);
        report.deadLettered += dead.length;
        if (dead.length > 0) this.#hooks.onDeadLetter(dead);
        return undefined;
      }
      return this.#bisect(records, signal, report, keepalive);
    }
    this.#hooks.onError(error);
    if (status === 401 || status === 403) {
      this.#pausedUntil = now + AUTH_PAUSE_MS;
      await this.#release(records, { countAttempt: false, nextAttemptAt: 0, error: message });
      return 'unauthorized';
    }
    if (error.retryAfter !== undefined && error.retryAfter > o.retry.maxTimeout) {
      const wait = Math.min(error.retryAfter, o.retry.maxRetryAfter);
      await this.#release(records, { countAttempt: true, nextAttemptAt: now + wait, error: message });
      return 'retry-after';
    }
    // Retries ran out (or a permanent answer that is not about the events, e.g. 404 from a wrong
    // baseUrl): nothing is dropped; the backoff is kept with the events so a reload honours it.
    // The server's last Retry-After is a floor: the next try never comes before it.
    const wait = Math.max(this.#backoff(records), Math.min(error.retryAfter ?? 0, o.retry.maxRetryAfter));
    await this.#release(records, { countAttempt: true, nextAttemptAt: now + wait, error: message, waitingForNetwork: status === 0 && error.retryAfter === undefined });
    return status === 0 || status === 408 || status === 429 || status >= 500 ? 'retries-exhausted' : 'rejected';
  }

  /** Sends each half on its own, in order (parents stay before children). */
  async #bisect(records: EventRecord[], signal: AbortSignal, report: FlushReport, keepalive: boolean) {
    const middle = Math.ceil(records.length / 2);
    const first = records.slice(0, middle);
    const second = records.slice(middle);
    const stop = await this.#sendAndSettle(first, signal, report, keepalive);
    if (stop) {
      await this.#release(second, { countAttempt: false, nextAttemptAt: 0, error: null });
      return stop;
    }
    return this.#sendAndSettle(second, signal, report, keepalive);
  }

  #backoff(records: EventRecord[]): number {
    const attempts = Math.max(...records.map((r) => r.attempts)) + 1;
    return backoffDelay(attempts, this.#options.retry);
  }

  async #settle(settlements: Settlement[]): Promise<EventRecord[]> {
    if (settlements.length === 0) return [];
    const db = await this.#connection.get();
    return settle(db, settlements, { now: this.#options.clock.now(), owner: this.#owner, durability: this.#options.durability });
  }

  async #release(records: EventRecord[], how: { countAttempt: boolean; nextAttemptAt: number; error: string | null; waitingForNetwork?: boolean }) {
    await this.#settle(records.map((r) => ({ externalId: r.externalId, to: 'pending', ...how })));
  }
}

/** index in the batch → the detail entries that name it (`loc: ["body", "events", i, ...]`). */
export function namedIndexes(detail: ValidationDetail[] | undefined, size: number): Map<number, ValidationDetail[]> {
  const out = new Map<number, ValidationDetail[]>();
  for (const d of detail ?? []) {
    const i = d.loc[0] === 'body' && d.loc[1] === 'events' ? d.loc[2] : undefined;
    if (typeof i === 'number' && Number.isInteger(i) && i >= 0 && i < size) {
      const list = out.get(i) ?? [];
      list.push(d);
      out.set(i, list);
    }
  }
  return out;
}

function isFutureTimestamp(detail: ValidationDetail): boolean {
  return detail.loc.includes('timestamp') && /future|past/i.test(detail.msg);
}

/**
 * Whether the server refused this event only for its timestamp. Polar validates EventCreate as a
 * union (`EventCreateCustomer | EventCreateExternalCustomer`, at `loc[3]`) and reports the errors
 * of every member, so an event with an external customer id also gets "customer_id: Field
 * required" from the other member: the event is clock-rejected when some member's errors (plus
 * those outside any member) are all future-timestamp errors.
 */
function onlyFutureTimestamp(details: ValidationDetail[]): boolean {
  const general: ValidationDetail[] = [];
  const members = new Map<string, ValidationDetail[]>();
  for (const d of details) {
    const member = d.loc[3];
    if (typeof member === 'string' && /^EventCreate/.test(member)) members.set(member, [...(members.get(member) ?? []), d]);
    else general.push(d);
  }
  if (!general.every(isFutureTimestamp)) return false;
  if (members.size === 0) return general.length > 0;
  return [...members.values()].some((list) => list.every(isFutureTimestamp));
}

/** The server's reason, field by field, as kept on a dead letter. */
function serverReason(details: ValidationDetail[], fallback?: string): string {
  if (details.length === 0) return fallback ?? 'The server refused the event (422) without naming a reason.';
  return details
    .map((d) => {
      const field = d.loc.slice(3).filter((part) => !/^EventCreate/.test(String(part))).join('.');
      return field ? `${field}: ${d.msg}` : d.msg;
    })
    .join('; ');
}
