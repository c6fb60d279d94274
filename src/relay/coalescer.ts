/**
 * Coalescing: the ingest requests of all devices within a window go to Polar as one request, and
 * each device is answered from Polar's answer, for its own events only, once Polar has answered.
 *
 * @module
 */
import type { TokenBucket } from './limits.js';
import type { PolarClient } from './polar.js';
import type { DetailItem } from './rules.js';
import type { RelayClock } from './types.js';

/** Polar refuses bodies over 10 MiB; the rest is room for the envelope. */
export const MAX_POLAR_BYTES = 10 * 1024 * 1024 - 1024;
/** Events per Polar request (the buffer's own largest batch). */
export const MAX_POLAR_EVENTS = 1000;

/** A device's answer before it becomes a Response. */
export interface Answer {
  status: number;
  body: unknown;
  retryAfterMs?: number;
}

/** One device request waiting to be sent: the events it still needs Polar for. */
export interface Share {
  /** Events for Polar, as JSON text, in the device's order. */
  json: string[];
  /** `external_id` (scoped) of each event, or null. */
  ids: (string | null)[];
  /** `parent_id` (as sent) of each event, or null. */
  parents: (string | null)[];
  /** The device's own index of each event. */
  own: number[];
  /** Events answered as duplicates without Polar (known held, or repeated in the request). */
  known: number;
  bytes: number;
  at: number;
  /** Sent on its own: a 413 or a 422 that named no event could not be split by device otherwise. */
  alone: boolean;
  resolve(answer: Answer): void;
}

/** Scoped ids Polar has answered 200 for (so it holds them): a resend is a duplicate without asking. */
export class HeldIds {
  readonly #ids = new Set<string>();
  constructor(readonly max: number) {}
  has(id: string): boolean {
    return this.#ids.has(id);
  }
  add(id: string): void {
    if (this.#ids.has(id)) return;
    this.#ids.add(id);
    if (this.#ids.size > this.max) this.#ids.delete(this.#ids.values().next().value!);
  }
}

export interface CoalescerOptions {
  window: number;
  maxWait: number;
  clock: RelayClock;
  bucket: TokenBucket;
  polar: PolarClient;
  held: HeldIds;
}

export class Coalescer {
  readonly #o: CoalescerOptions;
  readonly #waiting: Share[] = [];
  readonly #inFlight = new Set<string>();
  #flights = 0;
  #timer: unknown = null;
  #due = Infinity;
  #closing = false;
  #idle: (() => void)[] = [];

  constructor(o: CoalescerOptions) {
    this.#o = o;
  }

  #sending = 0;

  /** Device requests waiting for their window, the budget or Polar's answer. */
  get waiting(): number {
    return this.#waiting.length + this.#sending;
  }

  /** Waits for Polar's answer to this share (with the others of its window). */
  submit(share: Omit<Share, 'resolve' | 'at' | 'alone'>): Promise<Answer> {
    return new Promise<Answer>((resolve) => {
      this.#waiting.push({ ...share, at: this.#o.clock.now(), alone: false, resolve });
      const events = this.#waiting.reduce((n, s) => n + s.json.length, 0);
      this.#schedule(this.#closing || events >= MAX_POLAR_EVENTS ? 0 : this.#o.window);
    });
  }

  /** Sends what waits now, answers every device, resolves when nothing waits or flies. */
  close(): Promise<void> {
    this.#closing = true;
    this.#schedule(0);
    return new Promise((resolve) => {
      this.#idle.push(resolve);
      this.#checkIdle();
    });
  }

  #checkIdle(): void {
    if (this.#waiting.length > 0 || this.#flights > 0) return;
    if (this.#timer !== null) {
      this.#o.clock.clearTimeout(this.#timer);
      this.#timer = null;
      this.#due = Infinity;
    }
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  /** Runs the drain in `ms`, or sooner if it is already due sooner. */
  #schedule(ms: number): void {
    const due = this.#o.clock.now() + ms;
    if (this.#timer !== null && this.#due <= due) return;
    if (this.#timer !== null) this.#o.clock.clearTimeout(this.#timer);
    this.#due = due;
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#timer = null;
      this.#due = Infinity;
      this.#drain();
    }, ms);
  }

  #drain(): void {
    const { clock, bucket, held } = this.#o;
    for (;;) {
      const now = clock.now();
      // What Polar answered 200 for meanwhile (a device's resend raced its first send) is a duplicate.
      for (const share of [...this.#waiting]) {
        const keep: number[] = [];
        share.ids.forEach((id, i) => {
          if (id !== null && held.has(id)) share.known++;
          else keep.push(i);
        });
        if (keep.length === share.ids.length) continue;
        share.json = keep.map((i) => share.json[i]!);
        share.parents = keep.map((i) => share.parents[i]!);
        share.own = keep.map((i) => share.own[i]!);
        share.ids = keep.map((i) => share.ids[i]!);
        if (share.json.length === 0) this.#answer(share, { status: 200, body: { inserted: 0, duplicates: share.known } });
      }
      const batch = this.#pick();
      if (batch.length === 0) break;
      if (!bucket.take(now)) {
        const wait = bucket.waitMs(now);
        for (const share of [...this.#waiting]) {
          // The budget is spent (or Polar asked us to wait): the device keeps its events and comes back.
          if (this.#closing || now - share.at + wait > this.#o.maxWait) {
            this.#answer(share, { status: this.#closing ? 503 : 429, body: { detail: 'The relay has no Polar budget left now.' }, retryAfterMs: wait });
          }
        }
        if (this.#waiting.length > 0) this.#schedule(wait);
        break;
      }
      for (const share of batch) this.#waiting.splice(this.#waiting.indexOf(share), 1);
      void this.#send(batch);
    }
    this.#checkIdle();
  }

  /** The next Polar request: waiting shares in arrival order, within the limits, no id twice. */
  #pick(): Share[] {
    const batch: Share[] = [];
    const ids = new Set<string>();
    let events = 0;
    let bytes = 0;
    for (const share of this.#waiting) {
      if (share.alone && batch.length > 0) continue;
      if (share.ids.some((id) => id !== null && (this.#inFlight.has(id) || ids.has(id)))) continue;
      if (events + share.json.length > MAX_POLAR_EVENTS || bytes + share.bytes > MAX_POLAR_BYTES) {
        if (batch.length > 0) break;
      }
      batch.push(share);
      for (const id of share.ids) if (id !== null) ids.add(id);
      events += share.json.length;
      bytes += share.bytes;
      if (share.alone) break;
    }
    return batch;
  }

  #answer(share: Share, answer: Answer): void {
    const i = this.#waiting.indexOf(share);
    if (i >= 0) this.#waiting.splice(i, 1);
    share.resolve(answer);
  }

  /** Puts shares back at the front (they have waited their window already) and drains at once. */
  #requeue(shares: Share[]): void {
    this.#waiting.unshift(...shares);
    this.#schedule(0);
  }

  async #send(batch: Share[]): Promise<void> {
    this.#flights++;
    this.#sending += batch.length;
    const ids = batch.flatMap((s) => s.ids.filter((id): id is string => id !== null));
    for (const id of ids) this.#inFlight.add(id);
    const events = batch.reduce((n, s) => n + s.json.length, 0);
    try {
      const body = `{"events":[${batch.map((s) => s.json.join(',')).join(',')}]}`;
      const answer = await this.#o.polar.call('ingest', 'POST', '/v1/events/ingest', body, { events, devices: batch.length });
      for (const id of ids) this.#inFlight.delete(id);
      this.#settle(batch, answer.status, answer.text, answer.retryAfterMs, events);
    } catch (error) {
      for (const id of ids) this.#inFlight.delete(id);
      for (const share of batch) share.resolve({ status: 502, body: { detail: `The relay failed: ${(error as Error)?.message ?? error}` } });
    } finally {
      this.#flights--;
      this.#sending -= batch.length;
      if (this.#waiting.length > 0) this.#schedule(this.#closing ? 0 : this.#o.window);
      this.#checkIdle();
    }
  }

  #settle(batch: Share[], status: number, text: string, retryAfterMs: number | undefined, n: number): void {
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON: handled by status below
    }
    if (status === 200 && Number.isInteger(json?.duplicates) && Number.isInteger(json?.inserted)) {
      for (const share of batch) for (const id of share.ids) if (id !== null) this.#o.held.add(id);
      this.#attribute(batch, json.duplicates, n);
      return;
    }
    if (status === 422 && Array.isArray(json?.detail)) {
      this.#refused(batch, json.detail as DetailItem[]);
      return;
    }
    if (status === 413 && batch.length > 1) {
      for (const share of batch) share.alone = true;
      this.#requeue(batch);
      return;
    }
    if (status === 429 || status === 503) {
      // Polar's budget is spent (or it is down for a moment): every device keeps its events and waits.
      const wait = retryAfterMs ?? (status === 429 ? 60_000 : 1000);
      for (const share of batch) share.resolve({ status, body: { detail: 'Polar asked to wait.' }, retryAfterMs: wait });
      return;
    }
    if (status === 413 || status === 422) {
      for (const share of batch) share.resolve({ status, body: json ?? { detail: text } });
      return;
    }
    // Polar refused our token, was unreachable, or failed: not the device's fault; it retries.
    const detail = status === 0 ? 'The relay could not reach Polar.' : `Polar answered ${status}.`;
    for (const share of batch) share.resolve({ status: status >= 500 ? status : 502, body: { detail } });
  }

  /**
   * Polar answers a merged request with totals. Duplicates can only be events Polar held before
   * (the relay never sends one id twice in a request and answers known ones itself), so a device's
   * share is exact when the totals pin it down: no duplicates, all duplicates, or a lone share;
   * in general when `D - (n - n_k) = min(n_k, D)`. Any other share is answered 503 with
   * Retry-After 1: its events are held now, so its resend is answered from `held`, exactly.
   */
  #attribute(batch: Share[], duplicates: number, n: number): void {
    for (const share of batch) {
      const mine = share.json.length;
      const lo = Math.max(0, duplicates - (n - mine));
      const hi = Math.min(mine, duplicates);
      if (lo === hi) share.resolve({ status: 200, body: { inserted: mine - lo, duplicates: lo + share.known } });
      else share.resolve({ status: 503, body: { detail: 'Polar held some of these events already; send them again.' }, retryAfterMs: 1000 });
    }
  }

  /** A 422 names events by their index in the merged batch: each device hears of its own, by its own index. */
  #refused(batch: Share[], detail: DetailItem[]): void {
    const starts: number[] = [];
    let offset = 0;
    for (const share of batch) {
      starts.push(offset);
      offset += share.json.length;
    }
    const named = new Map<Share, DetailItem[]>();
    for (const item of detail) {
      const at = Array.isArray(item?.loc) ? item.loc[2] : undefined;
      if (typeof at !== 'number' || at < 0 || at >= offset) continue;
      let k = starts.length - 1;
      while (starts[k]! > at) k--;
      const share = batch[k]!;
      const own = share.own[at - starts[k]!]!;
      named.set(share, [...(named.get(share) ?? []), { ...item, loc: [...item.loc.slice(0, 2), own, ...item.loc.slice(3)] }]);
    }
    if (named.size === 0) {
      if (batch.length === 1) {
        batch[0]!.resolve({ status: 422, body: { detail } });
        return;
      }
      for (const share of batch) share.alone = true;
      this.#requeue(batch);
      return;
    }
    const refusedIds = new Set<string>();
    for (const [share, items] of named) {
      for (const id of share.ids) if (id !== null) refusedIds.add(id);
      share.resolve({ status: 422, body: { detail: items } });
    }
    // The rest go again without the refused shares; a child of a refused event waits for its parent.
    const rest: Share[] = [];
    for (const share of batch) {
      if (named.has(share)) continue;
      if (share.parents.some((p) => p !== null && refusedIds.has(p))) {
        share.resolve({ status: 503, body: { detail: 'A parent of these events was refused; send them again.' }, retryAfterMs: 1000 });
      } else rest.push(share);
    }
    if (rest.length > 0) this.#requeue(rest);
  }
}
