import { ClosedError } from '../errors.js';
import { argError, enumArg, numberArg, objectArg } from '../check.js';
import { Emitter } from '../emitter.js';
import { seamOf, type Seam } from '../seam.js';
import { relieveQuota } from '../storage/mirror-store.js';
import type { EventBuffer } from '../types.js';
import { queryMerged } from './query.js';
import { Reconciler } from './reconciler.js';
import type { LocalEvent, Mirror, MirrorEvents, MirrorOptions, QueryFilter, ReconcileOptions, ReconcileReport } from './types.js';

const EVENT_NAMES = ['reconcile', 'change', 'error'];

/** Each open mirror's seam, for the internal readers of `./meters`. */
const seams = new WeakMap<object, (operation: string) => Seam>();

/**
 * Opens the read path over a buffer's database: `reconcile()` pulls the server's UserEvents into
 * a local mirror and confirms the events they match; `query()` reads the merged view. Options are
 * checked here: a wrong one throws a TypeError naming it. Closing the buffer closes its mirrors.
 *
 * @example
 * const mirror = createMirror(buffer, { retention: { maxEvents: 10_000 } });
 * await mirror.reconcile({ externalCustomerId: 'user_42' });
 * const history = await mirror.query({ externalCustomerId: 'user_42' });
 */
export function createMirror(buffer: EventBuffer<any>, options: MirrorOptions = {}): Mirror {
  const seam = seamOf(buffer);
  const checked = checkOptions(options);
  if (seam.closed) throw new ClosedError('createMirror');
  return new PolarMirror(seam, checked);
}

/** The seam of an open mirror (TypeError for anything else, ClosedError once closed). */
export function mirrorSeam(mirror: unknown, operation: string): Seam {
  const get = typeof mirror === 'object' && mirror !== null ? seams.get(mirror) : undefined;
  if (!get) throw new TypeError('Expected a mirror made by createMirror().');
  return get(operation);
}

class PolarMirror implements Mirror {
  readonly #seam: Seam;
  readonly #reconciler: Reconciler;
  readonly #emitter = new Emitter<MirrorEvents>();
  readonly #closing = new AbortController();
  readonly #offChange: () => void;
  readonly #detach: () => void;
  #closed = false;

  constructor(seam: Seam, options: CheckedOptions) {
    this.#seam = seam;
    this.#reconciler = new Reconciler({
      seam,
      ...options,
      signal: this.#closing.signal,
      emitError: (error) => this.#emitter.emit('error', error),
    });
    // The buffer's changes (this tab's and the others') and reconciles all come through here.
    this.#offChange = seam.onChange((event) => this.#emitter.emit('change', event));
    this.#detach = seam.attach({
      close: () => this.close(),
      relieve: async () => relieveQuota(await seam.connection.get(), { now: seam.clock.now(), durability: seam.durability }),
    });
    seams.set(this, (operation) => {
      this.#assertOpen(operation);
      return seam;
    });
  }

  async reconcile(arg?: ReconcileOptions | unknown[]): Promise<ReconcileReport> {
    this.#assertOpen('reconcile');
    const report = await this.#reconciler.reconcile(arg);
    this.#emitter.emit('reconcile', report);
    if (report.matched + report.added + report.updated + report.resent + report.pruned > 0) this.#seam.changed('reconcile');
    return report;
  }

  async query(filter: QueryFilter = {}): Promise<LocalEvent[]> {
    this.#assertOpen('query');
    return queryMerged(await this.#seam.connection.get(), filter, this.#seam.clock.now());
  }

  on<K extends keyof MirrorEvents>(eventName: K, handler: (payload: MirrorEvents[K]) => void): () => void {
    enumArg('eventName', eventName, EVENT_NAMES);
    if (typeof handler !== 'function') throw argError('handler', 'a function', handler);
    return this.#emitter.on(eventName, handler);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#offChange();
    this.#detach();
    // Stops a page retry's wait at once; a page being applied commits or rolls back as a whole.
    this.#closing.abort(new ClosedError('reconcile'));
    await this.#reconciler.idle();
    this.#emitter.clear();
  }

  #assertOpen(operation: string): void {
    if (this.#closed || this.#seam.closed) throw new ClosedError(operation);
  }
}

interface CheckedOptions {
  confirmGracePeriod: number;
  lookBack: number;
  retention: { maxAge: number; maxEvents: number };
}

const MS = Number.MAX_VALUE;

function checkOptions(options: unknown): CheckedOptions {
  const o = objectArg('options', options, ['retention', 'confirmGracePeriod', 'lookBack'], '');
  const retention = objectArg('retention', o['retention'], ['maxAge', 'maxEvents']);
  return {
    // Polar's list lags minutes behind ingest: 30 minutes before a resend (see MirrorOptions).
    confirmGracePeriod: numberArg('confirmGracePeriod', o['confirmGracePeriod'], [0, MS, 1_800_000]),
    // A day of backdated events from other devices (see MirrorOptions).
    lookBack: numberArg('lookBack', o['lookBack'], [0, MS, 86_400_000]),
    retention: {
      maxAge: numberArg('retention.maxAge', retention['maxAge'], [1, Infinity, 7_776_000_000]),
      maxEvents: numberArg('retention.maxEvents', retention['maxEvents'], [1, Infinity, 50_000, 1]),
    },
  };
}
