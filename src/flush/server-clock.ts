/**
 * What we know of the server's clock, learned from the `Date` header of its answers. A `Date` is
 * truncated to the second and was written before the answer travelled, so `serverDate - localNow`
 * is a lower bound of the true offset (at most ~1 s + latency below it): clamping to
 * `localNow + offset` never sends a timestamp in the server's future. Close estimates tighten the
 * bound (the largest wins); an estimate far from the current one means a clock moved, and replaces it.
 */
/**
 * Offsets this small are within what a whole-second `Date` plus latency can measure: the clocks
 * agree, and the local clock is trusted (events keep their exact time) until the server refuses a
 * timestamp as in its future.
 */
const AGREEMENT_MS = 2000;

/** Past a step this long (about a year) the clock is broken, not skewed: the estimate stays put. */
const MAX_STEP_MS = 2 ** 35;

export class ServerClock {
  #offset: number | null = null;
  /** Set once the server refused a timestamp as future: from then on, always clamp to the bound. */
  #strict = false;
  /** How far below a refused time the next estimate goes when no `Date` can be read; doubles. */
  #step = 500;

  /** ms to add to the local clock to get (a lower bound of) the server's; null until an answer came. */
  get offset(): number | null {
    return this.#offset;
  }

  observe(serverDate: Date, localNow: number): void {
    const estimate = serverDate.getTime() - localNow;
    if (!Number.isFinite(estimate)) return;
    if (this.#offset === null || Math.abs(estimate - this.#offset) > 1500) this.#offset = estimate;
    else this.#offset = Math.max(this.#offset, estimate);
  }

  /**
   * The server refused a timestamp as in its future: our offset is too high (the local clock moved
   * forward less than the jump `observe` treats as a move), so take this answer's estimate even when
   * lower. Without a `Date` (CORS hides it from a page on another origin) all we know is that the
   * server's clock is behind `refusedMs`, the earliest refused time: the estimate steps back from it,
   * 1 s, then 2 s, 4 s..., so a skew of minutes takes a handful of refusals.
   */
  correct(serverDate: Date | undefined, localNow: number, refusedMs?: number): void {
    const estimate = serverDate
      ? serverDate.getTime() - localNow
      : this.#step < MAX_STEP_MS
        ? (refusedMs as number) - localNow - (this.#step *= 2)
        : Number.NaN;
    if (Number.isFinite(estimate) && (this.#offset === null || estimate < this.#offset)) this.#offset = estimate;
    this.#strict = true;
  }

  /** Latest timestamp (local ms) the server will accept now, or null when we know nothing yet. */
  clampLimit(localNow: number): number | null {
    if (this.#offset === null) return null;
    if (!this.#strict && this.#offset > -AGREEMENT_MS) return localNow + Math.max(0, this.#offset);
    return localNow + this.#offset;
  }
}
