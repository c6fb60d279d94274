import pRetry, { AbortError } from 'p-retry';
import { TransportError } from '../errors.js';
import type { Clock, RetryOptions } from '../options.js';

/**
 * Retry of one request with p-retry: exponential backoff with jitter for network errors, timeouts,
 * 408, 429 and 5xx; every other answer is permanent for this request (p-retry's AbortError).
 * `Retry-After` is honoured: the next try waits at least that long (p-retry's own backoff counts
 * toward it); a `Retry-After` longer than `maxTimeout` ends the retries so the caller can keep the
 * wait with the events instead of holding the flush.
 */

export function isRetryable(error: unknown): boolean {
  if (!(error instanceof TransportError)) return false;
  const s = error.status;
  return s === 0 || s === 408 || s === 429 || s >= 500;
}

/** Backoff before try number `attempt` (1-based) under these options, with jitter when randomize. */
export function backoffDelay(attempt: number, retry: Required<RetryOptions>, random: () => number = Math.random): number {
  const jitter = retry.randomize ? 1 + random() : 1;
  const raw = retry.minTimeout * retry.factor ** Math.max(0, attempt - 1) * jitter;
  return Math.round(Math.min(raw, retry.maxTimeout));
}

export interface RetryHooks {
  signal: AbortSignal;
  clock: Clock;
  /** Called after each failed try that will be retried. */
  onRetry?: (info: { error: unknown; attemptNumber: number; retriesLeft: number }) => void;
}

export function sleep(ms: number, clock: Clock, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clock.clearTimeout(handle);
      reject(signal.reason);
    };
    const handle = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export async function withRetry<T>(attempt: () => Promise<T>, retry: Required<RetryOptions>, hooks: RetryHooks): Promise<T> {
  let waitUntil = 0;
  // p-retry throws when the signal is aborted even after a try succeeded; a success must never be
  // lost (the server has the events), so keep it.
  let success: { value: T } | undefined;
  try {
    return await pRetry(
      async () => {
        const remaining = waitUntil - hooks.clock.now();
        if (remaining > 0) await sleep(remaining, hooks.clock, hooks.signal);
        try {
          const value = await attempt();
          success = { value };
          return value;
        } catch (error) {
          if (!isRetryable(error)) throw new AbortError(error as Error);
          const retryAfter = (error as TransportError).retryAfter;
          if (retryAfter !== undefined) {
            if (retryAfter > retry.maxTimeout) throw new AbortError(error as Error);
            waitUntil = hooks.clock.now() + retryAfter;
          } else {
            waitUntil = 0;
          }
          throw error;
        }
      },
      {
        retries: retry.retries,
        minTimeout: retry.minTimeout,
        maxTimeout: retry.maxTimeout,
        factor: retry.factor,
        randomize: retry.randomize,
        maxRetryTime: retry.maxRetryTime,
        signal: hooks.signal,
        onFailedAttempt: (context) => {
          if (context.retriesLeft > 0) hooks.onRetry?.(context);
        },
      },
    );
  } catch (error) {
    if (success) return success.value;
    throw error;
  }
}
