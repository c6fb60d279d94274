import { describe, expect, it } from 'vitest';
import { ServerClock } from '../../src/flush/server-clock.js';

const NOW = Date.parse('2026-03-01T12:00:00.750Z');

describe('ServerClock', () => {
  it('knows nothing (no clamp) until the server answered once', () => {
    expect(new ServerClock().clampLimit(NOW)).toBeNull();
  });

  it('keeps exact timestamps when the offset is within what a whole-second Date can measure', () => {
    const clock = new ServerClock();
    // The server's Date is truncated to 12:00:00 while our clock reads 12:00:00.750.
    clock.observe(new Date('2026-03-01T12:00:00Z'), NOW);
    expect(clock.offset).toBe(-750);
    expect(clock.clampLimit(NOW)).toBe(NOW);
  });

  it('clamps to the server clock when it is seconds behind', () => {
    const clock = new ServerClock();
    clock.observe(new Date('2026-03-01T11:55:00Z'), NOW);
    expect(clock.clampLimit(NOW)).toBe(NOW - 300_750);
  });

  it('clamps to the lower bound once the server refused a timestamp as future, even for a small offset', () => {
    const clock = new ServerClock();
    clock.observe(new Date('2026-03-01T12:00:00Z'), NOW);
    clock.correct(new Date('2026-03-01T12:00:00Z'), NOW + 100);
    expect(clock.clampLimit(NOW + 100)).toBe(NOW - 750);
  });

  it('never lowers the limit below local time for a server that is ahead', () => {
    const clock = new ServerClock();
    clock.observe(new Date('2026-03-01T12:00:05Z'), NOW);
    expect(clock.clampLimit(NOW)).toBe(NOW + 4250);
  });
});

describe('ServerClock without a readable Date (a page on another origin)', () => {
  it('steps back from the refused time, twice as far on each refusal', () => {
    const clock = new ServerClock();
    // The device tracked at NOW; the server refused it. All we know: the server is behind NOW.
    clock.correct(undefined, NOW, NOW);
    expect(clock.clampLimit(NOW)).toBe(NOW - 1000);
    clock.correct(undefined, NOW, NOW - 1000);
    expect(clock.clampLimit(NOW)).toBe(NOW - 3000);
    clock.correct(undefined, NOW, NOW - 3000);
    expect(clock.clampLimit(NOW)).toBe(NOW - 7000);
    // A Date, once readable, is the measure again (only ever lowering the estimate here).
    clock.correct(new Date(NOW - 60_000), NOW);
    expect(clock.clampLimit(NOW)).toBe(NOW - 60_000);
  });

  it('stops stepping at about a year: a clock that far off is broken, and the three-refusal rule ends it', () => {
    const clock = new ServerClock();
    let limit = NOW;
    for (let i = 0; i < 40; i++) {
      clock.correct(undefined, NOW, limit);
      limit = clock.clampLimit(NOW)!;
    }
    expect(NOW - limit).toBeLessThan(2 * 2 ** 36);
    clock.correct(undefined, NOW, limit);
    expect(clock.clampLimit(NOW)).toBe(limit);
  });
});
