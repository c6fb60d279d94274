import { StorageError, TransportError, type ValidationDetail } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { Connection } from '../storage/db.js';
import { claimBatch, countWaiting, isQuotaError, pruneSent, settle, type Settlement } from '../storage/queue.js';
import type { EventRecord } from '../storage/schema.js';
import { toWire, wireMsOf } from '../storage/serialize.js';
import { backoffDelay, isRetryable, withRetry } from './retry-policy.js';
import type { ServerClock } from './server-clock.js';
import type { FlushReport } from '../types.js';

export type { FlushReport };

type Stop = FlushReport['stoppedBy'];

export interface FlushHooks {
  dead(records: EventRecord[]): void;
  error(error: unknown): void;
  settled(): void;
  /** Records a settle wrote (the page-exit copy follows them). */
  written(records: EventRecord[]): void;
}

/** A page's keepalive requests share one 64 KiB body budget (ours and everyone else's). */
export const KEEPALIVE_MAX_BYTES = 60_000;
const AUTH_PAUSE_MS = 60_000;
/** A refused future timestamp is retried (clamped to the server's clock) this many times. */
const MAX_TIMESTAMP_RETRIES = 3;
/** Sent events are kept this long for a mirror to confirm them (a week offline included). */
const SENT_KEEP_MS = 14 * 24 * 3600 * 1000;

/** One flush: claim a batch → send with retry → settle, while due events remain; one batch in memory. */
export class Flusher {
  pausedUntil = 0;
  readonly #o: ResolvedOptions;
  readonly #connection: Connection;
  readonly #clock: ServerClock;
  readonly #owner: string;
  readonly #hooks: FlushHooks;
  /** Requests are never aborted: close() stops backoff waits, and a request in flight is settled. */
  readonly #requests = new AbortController().signal;

  constructor(o: ResolvedOptions, connection: Connection, clock: ServerClock, owner: string, hooks: FlushHooks) {
    this.#o = o;
    this.#connection = connection;
    this.#clock = clock;
    this.#owner = owner;
    this.#hooks = hooks;
  }

  async run(signal: AbortSignal, mode: { keepalive?: boolean; networkBack?: boolean } = {}): Promise<FlushReport> {
    const o = this.#o;
    const report: FlushReport = { sent: 0, duplicates: 0, deadLettered: 0, remaining: 0, requests: 0 };
    const maxBytes = mode.keepalive ? Math.min(o.maxBatchBytes, KEEPALIVE_MAX_BYTES) : o.maxBatchBytes;
    for (;;) {
      if (signal.aborted) {
        report.stoppedBy = signal.reason === 'lease-lost' ? 'locked' : 'closed';
        break;
      }
      const now = o.clock.now();
      const claim = await claimBatch(await this.#connection.get(), {
        owner: this.#owner,
        now,
        leaseDuration: o.leaseDuration,
        batchSize: o.batchSize,
        maxBytes,
        maxBatchBytes: o.maxBatchBytes,
        networkBack: !!mode.networkBack,
        durability: o.durability,
      });
      this.#dead(claim.dead, report);
      const corrupted = claim.dead.filter((r) => r.error?.startsWith('corrupted record'));
      if (corrupted.length) this.#hooks.error(new StorageError('flush', `${corrupted.length} corrupted record(s) set aside as dead letters`));
      if (claim.batch.length === 0) {
        if (claim.nextDueAt !== null) report.stoppedBy = 'not-due';
        if (claim.dead.length === 0) break;
        continue;
      }
      const stop = await this.#send(claim.batch, signal, report, !!mode.keepalive);
      this.#hooks.settled();
      if (stop) {
        report.stoppedBy = stop;
        break;
      }
    }
    const db = await this.#connection.get().catch(() => undefined);
    if (db && report.stoppedBy !== 'closed') {
      report.remaining = await countWaiting(db);
      await pruneSent(db, o.clock.now() - SENT_KEEP_MS, o.maxQueueSize, o.durability).catch(this.#hooks.error);
    }
    return report;
  }

  #dead(records: EventRecord[], report: FlushReport): void {
    report.deadLettered += records.length;
    if (records.length > 0) this.#hooks.dead(records);
  }

  async #settle(settlements: Settlement[], report?: FlushReport): Promise<void> {
    const written = await settle(await this.#connection.get(), settlements, this.#o.clock.now(), this.#o.durability);
    this.#hooks.written(written);
    if (report)
      this.#dead(
        written.filter((r) => r.status === 'dead'),
        report,
      );
  }

  #release(records: EventRecord[], how: { countAttempt: boolean; nextAttemptAt: number; error: string | null; waitingForNetwork?: boolean }) {
    return this.#settle(records.map((record) => ({ record, to: 'pending', ...how })));
  }

  /** Sends one group and settles it; a 413, or a 422 that names no event, splits it in two. */
  async #send(records: EventRecord[], signal: AbortSignal, report: FlushReport, keepalive: boolean): Promise<Stop> {
    const o = this.#o;
    // The bodies fixed when the events were made: a resend is byte-identical to every earlier send.
    const wire = records.map(toWire);
    const observe = (date: Date | undefined) => date && this.#clock.observe(date, o.clock.now());
    try {
      const result = await withRetry(
        async () => {
          report.requests++;
          try {
            const answer = await o.transport.ingest(wire, keepalive ? { signal: this.#requests, keepalive } : { signal: this.#requests });
            observe(answer.serverDate);
            return answer;
          } catch (error) {
            observe((error as TransportError).serverDate);
            throw error;
          }
        },
        // A page going away has no time for backoff.
        keepalive ? { ...o.retry, retries: 0 } : o.retry,
        { signal, clock: o.clock, onRetry: ({ error }) => this.#hooks.error(error) },
      );
      // A resend that the server counts as all duplicates proves it holds those events.
      const held = result.inserted === 0 && result.duplicates >= records.length;
      report.sent += records.length;
      report.duplicates += Math.min(result.duplicates, records.length);
      try {
        await this.#settle(records.map((record) => ({ record, to: 'sent', ...(held && record.sentAt !== null ? { heldByServer: true } : {}) })));
      } catch (error) {
        if (!isQuotaError(error)) throw error;
        // Delivered, but the answer cannot be stored: going on would send this batch again and again.
        this.#hooks.error(error);
        return 'storage-full';
      }
      return undefined;
    } catch (error) {
      if (signal.aborted) {
        await this.#release(records, { countAttempt: false, nextAttemptAt: 0, error: null }).catch(() => undefined);
        return signal.reason === 'lease-lost' ? 'locked' : 'closed';
      }
      return this.#failed(records, error, signal, report, keepalive);
    }
  }

  async #failed(records: EventRecord[], error: unknown, signal: AbortSignal, report: FlushReport, keepalive: boolean): Promise<Stop> {
    const o = this.#o;
    const now = o.clock.now();
    const message = (error as Error)?.message ?? String(error);
    const status = error instanceof TransportError ? error.status : -1;
    const backoff = backoffDelay(Math.max(...records.map((r) => r.attempts)) + 1, o.retry);
    const deadOne = (reason: string) => this.#settle([{ record: records[0]!, to: 'dead', error: reason }], report);
    if (status === 422 || status === 413) {
      const named = namedIndexes((error as TransportError).detail, records.length);
      if (status === 422 && named.size > 0) {
        const refused = records.filter((_, i) => named.get(i)?.some(isFutureTimestamp)).map(wireMsOf);
        if (refused.length) this.#clock.correct((error as TransportError).serverDate, now, Math.min(...refused));
        const limit = this.#clock.clampLimit(now);
        const settlements: Settlement[] = [];
        records.forEach((r, i) => {
          const details = named.get(i);
          const wireMs = wireMsOf(r);
          if (!details) settlements.push({ record: r, to: 'pending', countAttempt: false, nextAttemptAt: 0, error: null });
          else if (onlyFutureTimestamp(details) && (r.attempts < MAX_TIMESTAMP_RETRIES || (limit !== null && wireMs > limit))) {
            // Refused, so not stored: the one time a body may change (to the server's clock).
            const clamped = limit !== null && wireMs > limit ? { wireMs: limit } : {};
            settlements.push({ record: r, to: 'pending', countAttempt: true, nextAttemptAt: 0, error: message, ...clamped });
          } else settlements.push({ record: r, to: 'dead', error: serverReason(details) });
        });
        await this.#settle(settlements, report);
        return undefined;
      }
      if (records.length === 1) {
        await deadOne(status === 413 ? `413 (too large): ${message}` : serverReason((error as TransportError).detail ?? [], message));
        return undefined;
      }
      const half = Math.ceil(records.length / 2);
      const stop = await this.#send(records.slice(0, half), signal, report, keepalive);
      if (!stop) return this.#send(records.slice(half), signal, report, keepalive);
      await this.#release(records.slice(half), { countAttempt: false, nextAttemptAt: 0, error: null });
      return stop;
    }
    this.#hooks.error(error);
    if (keepalive && status === 0) {
      // The page's shared 64 KiB keepalive budget was spent (or the page died): the next page sends them.
      await this.#release(records, { countAttempt: false, nextAttemptAt: 0, error: null });
      return 'retries-exhausted';
    }
    if (status === 401 || status === 403) {
      this.pausedUntil = now + AUTH_PAUSE_MS;
      await this.#release(records, { countAttempt: false, nextAttemptAt: 0, error: message });
      return 'unauthorized';
    }
    const retryAfter = Math.min((error as TransportError).retryAfter ?? 0, o.retry.maxRetryAfter);
    if (retryAfter > o.retry.maxTimeout) {
      await this.#release(records, { countAttempt: true, nextAttemptAt: now + retryAfter, error: message });
      return 'retry-after';
    }
    await this.#release(records, {
      countAttempt: true,
      nextAttemptAt: now + Math.max(backoff, retryAfter),
      error: message,
      waitingForNetwork: status === 0 && (error as TransportError).retryAfter === undefined,
    });
    return status === -1 || isRetryable(error) ? 'retries-exhausted' : 'rejected';
  }
}

/** Batch index → the 422 detail entries that name it (`loc: ["body", "events", i, ...]`). */
export function namedIndexes(detail: ValidationDetail[] | undefined, size: number): Map<number, ValidationDetail[]> {
  const out = new Map<number, ValidationDetail[]>();
  for (const d of detail ?? []) {
    const i = d.loc[0] === 'body' && d.loc[1] === 'events' ? d.loc[2] : undefined;
    if (typeof i === 'number' && Number.isInteger(i) && i >= 0 && i < size) out.set(i, [...(out.get(i) ?? []), d]);
  }
  return out;
}

const isFutureTimestamp = (d: ValidationDetail): boolean => d.loc.includes('timestamp') && /future|past/i.test(d.msg);
const isMember = (part: unknown): boolean => /^EventCreate/.test(String(part));

/**
 * Whether only the timestamp was refused. Polar validates EventCreate as a union and reports every
 * member's errors (at `loc[3]`), so it is enough that one member's errors are all about the time.
 */
function onlyFutureTimestamp(details: ValidationDetail[]): boolean {
  const members = new Map<unknown, ValidationDetail[]>();
  for (const d of details) if (isMember(d.loc[3])) members.set(d.loc[3], [...(members.get(d.loc[3]) ?? []), d]);
  const general = details.filter((d) => !isMember(d.loc[3]));
  if (!general.every(isFutureTimestamp)) return false;
  return members.size === 0 ? general.length > 0 : [...members.values()].some((list) => list.every(isFutureTimestamp));
}

/** The server's reason, field by field, as kept on a dead letter. */
function serverReason(details: ValidationDetail[], fallback = '422 without a reason'): string {
  return (
    details
      .map((d) =>
        [
          d.loc
            .slice(3)
            .filter((p) => !isMember(p))
            .join('.'),
          d.msg,
        ]
          .filter(Boolean)
          .join(': '),
      )
      .join('; ') || fallback
  );
}
