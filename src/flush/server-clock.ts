/**
 * What we know of the server's clock, learned from the `Date` header of its answers. A `Date` is
 * truncated to the second and was written before the answer travelled, so `serverDate - localNow`
 * is a lower bound of the true offset (at most ~1 s + latency below it): clamping to
 * `localNow + offset` never sends a timestamp in the server's future. Close estimates tighten the
 * bound (the largest wins); an estimate far from the current one means a clock moved, and replaces it.
 */
export class ServerClock {
  #offset: number | null = null;

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
   * forward less than the jump `observe` treats as a move), so take this answer's estimate even when lower.
   */
  correct(serverDate: Date, localNow: number): void {
    const estimate = serverDate.getTime() - localNow;
    if (Number.isFinite(estimate) && (this.#offset === null || estimate < this.#offset)) this.#offset = estimate;
  }

  /** Latest timestamp (local ms) the server will accept now, or null when we know nothing yet. */
  clampLimit(localNow: number): number | null {
    return this.#offset === null ? null : localNow + this.#offset;
  }
}
