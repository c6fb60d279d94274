import { describe, expect, test } from 'vitest';
import { PerUserWindows, TokenBucket } from '../../src/relay/limits.js';

describe('the Polar budget (token bucket)', () => {
  test('holds 6 s of the budget and refills at budget/60 per second', () => {
    const bucket = new TokenBucket(300, 0);
    let taken = 0;
    while (bucket.take(0)) taken++;
    expect(taken).toBe(30);
    expect(bucket.waitMs(0)).toBe(200);
    expect(bucket.take(199)).toBe(false);
    expect(bucket.take(200)).toBe(true);
  });

  test("after Polar's Retry-After it starts empty: no burst the moment the pause ends", () => {
    const bucket = new TokenBucket(300, 0);
    bucket.pause(30_000);

    expect(bucket.take(29_999)).toBe(false);
    expect(bucket.waitMs(10_000)).toBe(20_200);
    expect(bucket.take(30_000)).toBe(false);
    expect(bucket.take(30_200)).toBe(true);
    expect(bucket.take(30_200)).toBe(false);
  });

  test('reads leave the reserve to ingest', () => {
    const bucket = new TokenBucket(60, 0); // capacity 6
    let reads = 0;
    while (bucket.take(0, 2)) reads++;
    expect(reads).toBe(4);
    expect(bucket.take(0)).toBe(true);
  });
});

describe('per-user windows', () => {
  test('count per key and kind within a minute, and say when the window ends', () => {
    const windows = new PerUserWindows();
    expect(windows.hit('ext:a', 'events', 3, 5, 0)).toEqual({ ok: true });
    expect(windows.hit('ext:a', 'events', 3, 5, 1000)).toEqual({ ok: false, retryAfterMs: 59_000 });
    expect(windows.hit('ext:b', 'events', 5, 5, 1000)).toEqual({ ok: true });
    expect(windows.hit('ext:a', 'events', 5, 5, 60_000)).toEqual({ ok: true });
  });
});
