/**
 * The relay's budgets: a token bucket of Polar requests, and fixed one-minute windows per user.
 *
 * @module
 */

/** Polar requests per minute as a bucket that refills continuously and holds `capacity` tokens. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  #pausedUntil = 0;
  readonly #perMs: number;
  readonly capacity: number;

  constructor(perMinute: number, now: number) {
    this.#perMs = perMinute / 60_000;
    // 6 s of budget: a burst after a quiet spell stays far below Polar's per-minute window.
    this.capacity = Math.max(1, Math.round(perMinute / 10));
    this.#tokens = this.capacity;
    this.#last = now;
  }

  #refill(now: number): void {
    if (now <= this.#last) return;
    this.#tokens = Math.min(this.capacity, this.#tokens + (now - this.#last) * this.#perMs);
    this.#last = now;
  }

  /** Takes a token when one is left beyond `reserve` (reads leave some for ingest). */
  take(now: number, reserve = 0): boolean {
    if (now < this.#pausedUntil) return false;
    this.#refill(now);
    if (this.#tokens < 1 + reserve) return false;
    this.#tokens -= 1;
    return true;
  }

  /** ms until `take(now, reserve)` can succeed. */
  waitMs(now: number, reserve = 0): number {
    this.#refill(now);
    // Tokens accrue from #last on (the end of a pause, when there is one).
    return Math.max(0, this.#last - now) + Math.max(0, Math.ceil((1 + reserve - this.#tokens) / this.#perMs));
  }

  /** Polar said 429 (or 503) with Retry-After: spend nothing until then. */
  pause(until: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, until);
    // Empty, and refilling only from the end of the pause: no burst the moment it ends.
    this.#tokens = Math.min(this.#tokens, 0);
    this.#last = Math.max(this.#last, this.#pausedUntil);
  }
}

interface Window {
  start: number;
  counts: Record<string, number>;
}

/** Counters per key in fixed one-minute windows; `hit` refuses past a limit and says when to retry. */
export class PerUserWindows {
  readonly #windows = new Map<string, Window>();
  #swept = 0;

  /** Counts `amount` on `kind` when it fits the limit; else ms until the window ends. */
  hit(key: string, kind: string, amount: number, limit: number, now: number): { ok: true } | { ok: false; retryAfterMs: number } {
    this.#sweep(now);
    let w = this.#windows.get(key);
    if (!w || now - w.start >= 60_000) {
      w = { start: now, counts: {} };
      this.#windows.set(key, w);
    }
    const used = w.counts[kind] ?? 0;
    if (used + amount > limit) return { ok: false, retryAfterMs: w.start + 60_000 - now };
    w.counts[kind] = used + amount;
    return { ok: true };
  }

  #sweep(now: number): void {
    if (now - this.#swept < 60_000) return;
    this.#swept = now;
    for (const [key, w] of this.#windows) if (now - w.start >= 60_000) this.#windows.delete(key);
  }
}
