import { validate } from 'superstruct';
import { ServerEventValidationError } from '../errors.js';
import type { Seam } from '../seam.js';
import { applyPage, customerKeysFor, earliestUnconfirmed, pruneRetention, readCursor, resendUnconfirmed, type MirrorItem } from '../storage/mirror-store.js';
import { customerKeyOf } from '../storage/serialize.js';
import type { ReconcileOptions, ReconcileReport } from './types.js';
import { isSystemEvent, UserEventStruct } from './structs.js';
import { dateArg, objectArg, oneOf, stringArg } from '../check.js';
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
 * How often a reconcile of a scope reads its whole `lookBack` window again, for events other
 * devices backdated into what was read. In between, a reconcile reads from the cursor only, so one
 * with nothing new costs one request (Polar allows an organization 500 a minute, all devices together).
 */
export const SWEEP_INTERVAL_MS = 60 * 60 * 1000;

/**
 * Passes over one crowded millisecond before leaving it to the next reconcile (see #readMillisecond):
 * with T events in it, each request shows a random 100 of them.
 */
const MILLISECOND_PASSES = 8;

/** The exclusive lower bound (µs) that still includes the whole millisecond of `micros`. */
function beforeMillisecond(micros: number): number {
  return Math.floor(micros / 1000) * 1000 - 1;
}

/**
 * Pulls the server's UserEvents into the mirror and confirms the local events they match.
 *
 * Paging: `GET /v1/events/?sorting=timestamp&limit=100&page=1` with an exclusive
 * `start_timestamp` just before the millisecond of the cursor, then just before the millisecond
 * of each full page's last event. Polar lists from a copy that keeps milliseconds, and events of
 * one millisecond come in a different order on each request: page numbers would skip or repeat
 * them at a page boundary, so each request starts again at the last millisecond read (what the
 * mirror already has is recognised by `id`). The start reaches further back only for unconfirmed
 * sent events (their earliest time) and, once an hour, for the `lookBack` window. Each page is
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
   * Pulls every event from the cursor's millisecond on (further back for unconfirmed sent events
   * and the hourly sweep); returns the customer keys this pull covered (null: all) and when it
   * began. It always starts before every unconfirmed sent event.
   */
  async #pull(scope: ScopeOptions, report: ReconcileReport): Promise<{ keys: string[] | null; startedAt: number }> {
    const { seam, lookBack, retention } = this.#ctx;
    const list = seam.transport.list;
    if (typeof list !== 'function') {
      throw new TypeError('reconcile() needs a transport with list() (httpTransport has one) to read GET /v1/events/; or pass reconcile(arrayOfUserEvents).');
    }
    const db = await this.#ctx.seam.connection.get();
    const keys = scope.customerKey === null ? null : await customerKeysFor(db, scope.customerKey);
    const cursor = await readCursor(db, scope.cursorScope);
    const sweepScope = `sweep ${scope.cursorScope}`;
    const startedAt = seam.clock.now();
    // Where to start (exclusive bound, µs). A pull without a cursor reads everything (from `since`):
    // it counts as a sweep.
    let start: number | undefined;
    let sweep = cursor === undefined;
    if (cursor !== undefined) {
      start = beforeMillisecond(cursor.timestampMicros);
      const lastSweep = lookBack > 0 ? await readCursor(db, sweepScope) : undefined;
      if (lookBack > 0 && (lastSweep === undefined || startedAt * 1000 - lastSweep.timestampMicros >= SWEEP_INTERVAL_MS * 1000)) {
        // Never further back than retention keeps, or each sweep would add and prune the same events.
        const window = Math.max(cursor.timestampMicros - lookBack * 1000, (startedAt - retention.maxAge) * 1000);
        start = Math.min(start, beforeMillisecond(window));
        sweep = true;
      }
    } else if (scope.since !== undefined) {
      start = beforeMillisecond(scope.since.getTime() * 1000);
    }
    if (start !== undefined) {
      const earliest = await earliestUnconfirmed(db, keys, startedAt);
      if (earliest !== null) start = Math.min(start, beforeMillisecond((earliest - SENT_LOOKBACK_MS) * 1000));
    }
    const query: Record<string, string | number> = { sorting: 'timestamp', limit: PAGE_LIMIT };
    if (scope.externalCustomerId !== undefined) query['external_customer_id'] = scope.externalCustomerId;
    if (scope.customerId !== undefined) query['customer_id'] = scope.customerId;

    for (;;) {
      const page = await this.#page(scope, report, { ...query, page: 1, ...(start !== undefined ? { start_timestamp: formatMicros(start) } : {}) });
      if (page.count < PAGE_LIMIT || page.minMicros === null || page.maxMicros === null) break;
      const lastMs = Math.floor(page.maxMicros / 1000);
      let next: number;
      if (Math.floor(page.minMicros / 1000) < lastMs) {
        // The page may have ended inside its last millisecond: read that millisecond again.
        next = lastMs * 1000 - 1;
      } else {
        // A whole page of one millisecond: read it alone, then go on after it. Not all of it seen:
        // stop here (the cursor is inside it), the next reconcile starts at it again.
        if (!(await this.#readMillisecond(scope, report, query, lastMs))) break;
        next = lastMs * 1000 + 999;
      }
      // A list that ignores start_timestamp would bring the same page again: stop rather than loop.
      if (start !== undefined && next <= start) break;
      start = next;
    }
    if (sweep) await this.#apply([], report, { scope: sweepScope, timestampMicros: startedAt * 1000 });
    return { keys, startedAt };
  }

  /** Requests one page and applies it with the cursor; returns its size and time span. */
  async #page(
    scope: ScopeOptions,
    report: ReconcileReport,
    query: Record<string, string | number>,
  ): Promise<{ count: number; ids: string[]; total: number; maxPage: number; minMicros: number | null; maxMicros: number | null }> {
    const { seam, signal } = this.#ctx;
    const list = seam.transport.list!;
    signal.throwIfAborted();
    // A page the server failed (5xx, 429, a dropped connection) is tried again with the
    // buffer's retry options, as a flush does; each failed try is reported on "error".
    const answer = await withRetry(() => list.call(seam.transport, query, { signal }), seam.retry, {
      signal,
      clock: seam.clock,
      onRetry: ({ error }) => this.#ctx.emitError(error as Error),
    });
    report.pages++;
    const items = Array.isArray(answer?.items) ? answer.items : [];
    const prepared = this.#prepare(items, report, Number(query['page']));
    const cursorAt = prepared.maxMicros === null ? undefined : { scope: scope.cursorScope, timestampMicros: prepared.maxMicros };
    await this.#apply(prepared.items, report, cursorAt);
    return {
      count: items.length,
      ids: items.map((i) => (i as { id?: unknown } | null)?.id).filter((id): id is string => typeof id === 'string'),
      total: Number(answer?.pagination?.total_count) || 0,
      maxPage: Number(answer?.pagination?.max_page) || 0,
      minMicros: prepared.minMicros,
      maxMicros: prepared.maxMicros,
    };
  }

  /**
   * More than a page of events in one millisecond: page numbers are all there is, and the server
   * orders that millisecond differently on each request. Pass over its pages until every event it
   * counts was seen; false when passes ran out first.
   */
  async #readMillisecond(scope: ScopeOptions, report: ReconcileReport, query: Record<string, string | number>, ms: number): Promise<boolean> {
    const seen = new Set<string>();
    const bounds = { start_timestamp: formatMicros(ms * 1000 - 1), end_timestamp: formatMicros((ms + 1) * 1000) };
    for (let pass = 0; pass < MILLISECOND_PASSES; pass++) {
      let total = 0;
      for (let page = 1; ; page++) {
        const answer = await this.#page(scope, report, { ...query, ...bounds, page });
        for (const id of answer.ids) seen.add(id);
        total = answer.total;
        if (answer.count < PAGE_LIMIT || !(page < answer.maxPage) || seen.size >= total) break;
      }
      if (seen.size >= total) return true;
    }
    return false;
  }

  /** Validates each item (invalid ones reported and skipped, SystemEvents counted and skipped). */
  #prepare(items: unknown[], report: ReconcileReport, page: number | undefined): { items: MirrorItem[]; minMicros: number | null; maxMicros: number | null } {
    const out: MirrorItem[] = [];
    let maxMicros: number | null = null;
    let minMicros: number | null = null;
    items.forEach((item, position) => {
      report.fetched++;
      const micros = itemMicros(item);
      // The cursor moves past every item read, valid or not, so nothing is read again and again.
      if (micros !== null) {
        maxMicros = Math.max(maxMicros ?? -Infinity, micros);
        minMicros = Math.min(minMicros ?? Infinity, micros);
      }
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
    return { items: out, minMicros, maxMicros };
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
  const o = objectArg('reconcile()', arg, ['externalCustomerId', 'customerId', 'since'], '');
  const ext = stringArg('externalCustomerId', o['externalCustomerId']);
  const cus = stringArg('customerId', o['customerId']);
  oneOf(o, 'externalCustomerId', 'customerId');
  const since = dateArg('since', o['since']);
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
