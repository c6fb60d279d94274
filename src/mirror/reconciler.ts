import { validate } from 'superstruct';
import { ServerEventValidationError } from '../errors.js';
import type { Seam } from '../seam.js';
import { applyPage, customerKeysFor, earliestUnconfirmed, pruneRetention, readCursor, resendUnconfirmed, type MirrorItem } from '../storage/mirror-store.js';
import { customerKeyOf } from '../storage/serialize.js';
import type { ReconcileOptions, ReconcileReport } from './types.js';
import { isSystemEvent, isValidDate, UserEventStruct } from './structs.js';
import { validationFailures } from '../validation/validate.js';
import { withRetry } from '../flush/retry-policy.js';
import { formatMicros, matcher, prepareServerEvent, wireMicros } from './match.js';

export interface ReconcilerContext {
  seam: Seam;
  confirmGracePeriod: number;
  lookBack: number;
  retention: { maxAge: number; maxEvents: number };
  signal: AbortSignal;
  emitError: (error: Error) => void;
}

/** Items per `GET /v1/events/` page: Polar's maximum. */
export const PAGE_LIMIT = 100;

/**
 * How far before the earliest unconfirmed `sent` event a pull starts. Such an event may have been
 * sent (with its own, older timestamp) after the cursor moved past that time; and the flusher may
 * have clamped its wire timestamp to the server's clock, a little earlier than the local one.
 */
export const SENT_LOOKBACK_MS = 10 * 60 * 1000;

/**
 * Pulls the server's UserEvents into the mirror and confirms the local events they match.
 *
 * Paging: `GET /v1/events/?sorting=timestamp&limit=100&page=n` with `start_timestamp` `lookBack`
 * before the stored cursor (other devices backdate events into what was read; the bound is
 * exclusive and several events share a timestamp), so what the mirror already has is recognised
 * by `id` and not counted as added. Each page is
 * applied in one transaction together with its matches and the new cursor, so an interrupted
 * reconcile resumes at the last page applied. Calls on one buffer run one after another.
 */
export class Reconciler {
  readonly #ctx: ReconcilerContext;
  #running: Promise<unknown> = Promise.resolve();

  constructor(ctx: ReconcilerContext) {
    this.#ctx = ctx;
  }

  reconcile(arg?: ReconcileOptions | unknown[]): Promise<ReconcileReport> {
    // Checked now, so a bad argument throws before waiting for an earlier call.
    const plan = Array.isArray(arg) ? { items: arg } : { scope: checkOptions(arg) };
    const run = this.#running.then(
      () => this.#run(plan),
      () => this.#run(plan),
    );
    this.#running = run.catch(() => undefined);
    return run;
  }

  /** Resolves once no reconcile is running. */
  async idle(): Promise<void> {
    await this.#running;
  }

  async #run(plan: { items: unknown[] } | { scope: ScopeOptions }): Promise<ReconcileReport> {
    const { seam, confirmGracePeriod, retention } = this.#ctx;
    const report: ReconcileReport = {
      fetched: 0,
      matched: 0,
      added: 0,
      updated: 0,
      unchanged: 0,
      invalid: 0,
      system: 0,
      resent: 0,
      pruned: 0,
      pages: 0,
    };
    if ('items' in plan) {
      const prepared = this.#prepare(plan.items, report, undefined);
      await this.#apply(prepared.items, report, undefined);
    } else {
      const pulled = await this.#pull(plan.scope, report);
      const db = await this.#ctx.seam.connection.get();
      // Polar lists from an asynchronous copy: only a pull that began after the grace period,
      // and covered the event (its customer, from before its time), shows it is missing.
      const resent = await resendUnconfirmed(db, {
        now: pulled.startedAt,
        gracePeriod: confirmGracePeriod,
        keys: pulled.keys,
        durability: seam.durability,
      });
      report.resent = resent.length;
    }
    const db = await this.#ctx.seam.connection.get();
    const pruned = await pruneRetention(db, {
      now: seam.clock.now(),
      maxAge: retention.maxAge,
      maxEvents: retention.maxEvents,
      durability: seam.durability,
    });
    report.pruned = pruned.mirror;
    return report;
  }

  /**
   * Pulls every page from the cursor's look-back window on; returns the customer keys this pull
   * covered (null: all) and when it began. It always starts before every unconfirmed sent event.
   */
  async #pull(scope: ScopeOptions, report: ReconcileReport): Promise<{ keys: string[] | null; startedAt: number }> {
    const { seam, signal, lookBack, retention } = this.#ctx;
    const list = seam.transport.list;
    if (typeof list !== 'function') {
      throw new TypeError('reconcile() needs a transport with list() (httpTransport has one) to read GET /v1/events/; or pass reconcile(arrayOfUserEvents).');
    }
    const db = await this.#ctx.seam.connection.get();
    const keys = scope.customerKey === null ? null : await customerKeysFor(db, scope.customerKey);
    const cursor = await readCursor(db, scope.cursorScope);
    const startedAt = seam.clock.now();
    // Where to start (exclusive bound, µs): `lookBack` before the cursor (never further back than
    // retention keeps, or each reconcile would add and prune the same events), or `since`.
    let start: number | undefined;
    if (cursor !== undefined) {
      const window = Math.max(cursor.timestampMicros - lookBack * 1000, (startedAt - retention.maxAge) * 1000);
      start = Math.min(cursor.timestampMicros, window) - 1;
    } else if (scope.since !== undefined) {
      start = scope.since.getTime() * 1000 - 1;
    }
    if (start !== undefined) {
      const earliest = await earliestUnconfirmed(db, keys, startedAt);
      if (earliest !== null) start = Math.min(start, (earliest - SENT_LOOKBACK_MS) * 1000 - 1);
    }
    const query: Record<string, string | number> = { sorting: 'timestamp', limit: PAGE_LIMIT };
    if (scope.externalCustomerId !== undefined) query['external_customer_id'] = scope.externalCustomerId;
    if (scope.customerId !== undefined) query['customer_id'] = scope.customerId;
    if (start !== undefined) query['start_timestamp'] = formatMicros(start);

    for (let page = 1; ; page++) {
      signal.throwIfAborted();
      // A page the server failed (5xx, 429, a dropped connection) is tried again with the
      // buffer's retry options, as a flush does; each failed try is reported on "error".
      const answer = await withRetry(() => list.call(seam.transport, { ...query, page }, { signal }), seam.retry, {
        signal,
        clock: seam.clock,
        onRetry: ({ error }) => this.#ctx.emitError(error as Error),
      });
      report.pages++;
      const items = Array.isArray(answer?.items) ? answer.items : [];
      const prepared = this.#prepare(items, report, page);
      const cursorAt = prepared.maxMicros === null ? undefined : { scope: scope.cursorScope, timestampMicros: prepared.maxMicros };
      await this.#apply(prepared.items, report, cursorAt);
      const maxPage = Number(answer?.pagination?.max_page);
      if (items.length === 0 || items.length < PAGE_LIMIT || !(page < maxPage)) break;
    }
    return { keys, startedAt };
  }

  /** Validates each item (invalid ones reported and skipped, SystemEvents counted and skipped). */
  #prepare(items: unknown[], report: ReconcileReport, page: number | undefined): { items: MirrorItem[]; maxMicros: number | null } {
    const out: MirrorItem[] = [];
    let maxMicros: number | null = null;
    items.forEach((item, position) => {
      report.fetched++;
      const micros = itemMicros(item);
      // The cursor moves past every item read, valid or not, so nothing is read again and again.
      if (micros !== null) maxMicros = Math.max(maxMicros ?? -Infinity, micros);
      if (isSystemEvent(item)) {
        report.system++;
        return;
      }
      const [error, event] = validate(item, UserEventStruct, { coerce: true });
      if (error || event === undefined) {
        report.invalid++;
        const id = (item as { id?: unknown } | null)?.id;
        this.#ctx.emitError(
          new ServerEventValidationError(error ? validationFailures(error) : [{ path: [], message: 'Not a UserEvent' }], {
            serverId: typeof id === 'string' ? id : undefined,
            position,
            page,
            cause: error,
          }),
        );
        return;
      }
      out.push(prepareServerEvent(event, (item as { timestamp?: unknown }).timestamp));
    });
    return { items: out, maxMicros };
  }

  async #apply(items: MirrorItem[], report: ReconcileReport, cursor: { scope: string; timestampMicros: number } | undefined) {
    if (items.length === 0 && cursor === undefined) return;
    const { seam } = this.#ctx;
    const db = await this.#ctx.seam.connection.get();
    const result = await applyPage(db, items, {
      now: seam.clock.now(),
      durability: seam.durability,
      matcher,
      ...(cursor ? { cursor } : {}),
    });
    report.added += result.added;
    report.updated += result.updated;
    report.unchanged += result.unchanged;
    report.matched += result.confirmed.length;
  }
}

interface ScopeOptions {
  externalCustomerId: string | undefined;
  customerId: string | undefined;
  since: Date | undefined;
  /** The customer key reconciled, or null for every customer. */
  customerKey: string | null;
  /** The `meta` cursor's scope: the customer key, or "all". */
  cursorScope: string;
}

function checkOptions(arg: unknown): ScopeOptions {
  if (arg === undefined) return { externalCustomerId: undefined, customerId: undefined, since: undefined, customerKey: null, cursorScope: 'all' };
  if (typeof arg !== 'object' || arg === null) {
    throw new TypeError('Expected reconcile() to get nothing, { externalCustomerId?, customerId?, since? }, or an array of UserEvents.');
  }
  const o = arg as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!['externalCustomerId', 'customerId', 'since'].includes(key)) {
      throw new TypeError(`Unknown reconcile() option \`${key}\`: expected externalCustomerId, customerId or since.`);
    }
  }
  const ext = o['externalCustomerId'];
  const cus = o['customerId'];
  const since = o['since'];
  if (ext !== undefined && (typeof ext !== 'string' || ext.length === 0)) throw new TypeError('Expected `externalCustomerId` to be a non-empty string.');
  if (cus !== undefined && (typeof cus !== 'string' || cus.length === 0)) throw new TypeError('Expected `customerId` to be a non-empty string.');
  if (ext !== undefined && cus !== undefined) {
    throw new TypeError('Expected only one of `externalCustomerId` and `customerId`: reconcile one customer at a time (or every customer, with neither).');
  }
  if (since !== undefined && !isValidDate(since)) throw new TypeError('Expected `since` to be a valid Date.');
  const customerKey =
    ext !== undefined ? customerKeyOf({ externalCustomerId: ext as string }) : cus !== undefined ? customerKeyOf({ customerId: cus as string }) : null;
  return {
    externalCustomerId: ext as string | undefined,
    customerId: cus as string | undefined,
    since: since as Date | undefined,
    customerKey,
    cursorScope: customerKey ?? 'all',
  };
}

/** The item's timestamp in µs, when it has a readable one. */
function itemMicros(item: unknown): number | null {
  const raw = (item as { timestamp?: unknown } | null)?.timestamp;
  if (typeof raw !== 'string') return null;
  const micros = wireMicros(raw, new Date(NaN));
  return Number.isFinite(micros) ? micros : null;
}
