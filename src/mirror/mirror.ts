import { ClosedError } from '../errors.js';
import { Emitter } from '../emitter.js';
import { seamOf, type Seam } from '../seam.js';
import { relieveQuota } from '../storage/mirror-store.js';
import type { EventBuffer } from '../types.js';
import { queryMerged } from './query.js';
import { Reconciler } from './reconciler.js';
import type { LocalEvent, Mirror, MirrorEvents, MirrorOptions, QueryFilter, ReconcileOptions, ReconcileReport } from './types.js';

const EVENT_NAMES = ['reconcile', 'change', 'error'];

/** Each open mirror's seam, for the internal readers of `./meters` (see merged.ts). */
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
    if (!EVENT_NAMES.includes(eventName)) {
      throw new TypeError(`Unknown event "${String(eventName)}": expected reconcile, change or error.`);
    }
    if (typeof handler !== 'function') throw new TypeError('Expected the handler to be a function.');
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

const OPTION_KEYS = ['retention', 'confirmGracePeriod', 'lookBack'];

function checkOptions(options: unknown): CheckedOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError('Expected createMirror() options: an object { retention?, confirmGracePeriod?, lookBack? }.');
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!OPTION_KEYS.includes(key)) throw new TypeError(`Unknown option \`${key}\`. Known options: ${OPTION_KEYS.join(', ')}.`);
  }
  const retention = (o['retention'] ?? {}) as Record<string, unknown>;
  if (typeof retention !== 'object' || retention === null || Array.isArray(retention)) {
    throw new TypeError('Expected `retention` to be an object { maxAge?, maxEvents? }.');
  }
  for (const key of Object.keys(retention)) {
    if (key !== 'maxAge' && key !== 'maxEvents') throw new TypeError(`Unknown option \`retention.${key}\`. Known: maxAge, maxEvents.`);
  }
  return {
    // Polar's list lags minutes behind ingest: 30 minutes before a resend (see MirrorOptions).
    confirmGracePeriod: number('confirmGracePeriod', o['confirmGracePeriod'], 0, 1_800_000),
    // A day of backdated events from other devices (see MirrorOptions).
    lookBack: number('lookBack', o['lookBack'], 0, 86_400_000),
    retention: {
      maxAge: number('retention.maxAge', retention['maxAge'], 1, 7_776_000_000, true),
      maxEvents: number('retention.maxEvents', retention['maxEvents'], 1, 50_000, true, true),
    },
  };
}

function number(name: string, value: unknown, min: number, fallback: number, infinity = false, integer = false): number {
  if (value === undefined) return fallback;
  const ok = typeof value === 'number' && value >= min && (Number.isFinite(value) ? !integer || Number.isInteger(value) : infinity && value === Infinity);
  if (!ok) {
    const what = integer ? `an integer ≥ ${min}` : `a number of milliseconds ≥ ${min}`;
    const shown = typeof value === 'string' ? JSON.stringify(value) : typeof value === 'object' && value !== null ? 'an object' : String(value);
    throw new TypeError(`Expected \`${name}\` to be ${what}${infinity ? ' (or Infinity)' : ''}, got ${shown}.`);
  }
  return value as number;
}
