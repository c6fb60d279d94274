import { describe, expect, it } from 'vitest';
import { TransportError } from '../../src/errors.js';
import { backoffDelay, isRetryable } from '../../src/flush/retry-policy.js';

const base = { retries: 5, minTimeout: 1000, maxTimeout: 30_000, factor: 2, randomize: false, maxRetryTime: Infinity, maxRetryAfter: 900_000 };

describe('backoffDelay', () => {
  it('grows by factor with each attempt', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, base))).toEqual([1000, 2000, 4000, 8000]);
  });

  it('never exceeds maxTimeout', () => {
    expect(backoffDelay(20, base)).toBe(30_000);
  });

  it('multiplies by a random factor from 1 to 2 when randomize is on', () => {
    const jittered = { ...base, randomize: true };
    expect(backoffDelay(2, jittered, () => 0)).toBe(2000);
    expect(backoffDelay(2, jittered, () => 0.5)).toBe(3000);
    expect(backoffDelay(2, jittered, () => 0.999)).toBe(3998);
  });

  it('spreads clients that failed together over different delays', () => {
    const delays = new Set(Array.from({ length: 20 }, () => backoffDelay(3, { ...base, randomize: true })));
    expect(delays.size).toBeGreaterThan(10);
  });
});

describe('isRetryable', () => {
  it('retries network failures, 408, 429 and 5xx, and nothing else', () => {
    const retryable = [0, 408, 429, 500, 502, 503, 504].map((status) => isRetryable(new TransportError('x', { status })));
    const permanent = [400, 401, 403, 404, 413, 422].map((status) => isRetryable(new TransportError('x', { status })));
    expect(retryable.every(Boolean)).toBe(true);
    expect(permanent.some(Boolean)).toBe(false);
    expect(isRetryable(new Error('bug'))).toBe(false);
  });
});
