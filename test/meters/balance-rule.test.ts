// The balance rule on its own (countedByPortal): which local events a portal answer proves
// Polar's meter counts, and that no move of an event from one state to another, under one
// answer, ever turns "not counted" into "counted" (which would raise the balance).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countedByPortal, RECOUNT_MS, type PortalReading } from '../../src/meters/balance.js';
import type { CustomerMeter } from '../../src/meters/portal.js';
import type { EventStatus } from '../../src/storage/schema.js';

type Held = { status: EventStatus; sentAt: number | null; confirmedAt?: number | undefined };
const T = Date.UTC(2026, 11, 6, 12);

function reading(askedAt: number, modifiedAt: number | null, createdAt = T - 86_400_000): PortalReading {
  const meter = { createdAt: new Date(createdAt), modifiedAt: modifiedAt === null ? null : new Date(modifiedAt) } as CustomerMeter;
  return { meter, askedAt };
}

describe('countedByPortal', () => {
  it('counts a sent or confirmed event once the meter was recomputed RECOUNT_MS after its ingest answer, and asked for after that', () => {
    const sent: Held = { status: 'sent', sentAt: T, confirmedAt: undefined };
    const later = T + RECOUNT_MS;
    expect(countedByPortal(sent, reading(later, later))).toBe(true);
    expect(countedByPortal({ ...sent, status: 'confirmed', confirmedAt: T + 5000 }, reading(later, later))).toBe(true);
    // Recomputed too soon after the answer (the job may have read the events before it).
    expect(countedByPortal(sent, reading(later + 60_000, later - 1))).toBe(false);
    // Asked for too soon: the device cannot know the answer came after the recompute.
    expect(countedByPortal(sent, reading(later - 1, later + 60_000))).toBe(false);
    // Never recomputed: created_at stands for it.
    expect(countedByPortal(sent, reading(later, null, later))).toBe(true);
    expect(countedByPortal(sent, { meter: undefined, askedAt: later })).toBe(false);
  });

  it('never counts an event Polar does not hold: waiting, in flight, dead', () => {
    for (const status of ['pending', 'sending', 'dead'] as EventStatus[]) {
      expect(countedByPortal({ status, sentAt: T, confirmedAt: undefined }, reading(T + 3_600_000, T + 3_600_000))).toBe(false);
    }
  });

  it('takes the confirmation for the ingest of an event confirmed before revision 3 without an answer', () => {
    const confirmed: Held = { status: 'confirmed', sentAt: null, confirmedAt: T };
    expect(countedByPortal(confirmed, reading(T + RECOUNT_MS, T + RECOUNT_MS))).toBe(true);
    expect(countedByPortal(confirmed, reading(T + RECOUNT_MS - 1, T + RECOUNT_MS))).toBe(false);
  });

  it('under one answer, no state move turns an uncounted event into a counted one (property)', () => {
    // Every move storage makes (revision 3), at a time at or after the answer was asked for: the
    // local read that goes with an answer starts after it, so the moves between two reads do too.
    type Move = (r: Held, at: number) => Held | undefined;
    const moves: Record<string, Move> = {
      claim: (r) => (r.status === 'pending' ? { ...r, status: 'sending' } : undefined),
      answered: (r, at) => (r.status === 'sending' ? { ...r, status: 'sent', sentAt: at } : undefined),
      failed: (r) => (r.status === 'sending' ? { ...r, status: 'pending' } : undefined),
      confirmed: (r, at) => (r.status === 'sent' ? { ...r, status: 'confirmed', confirmedAt: at } : undefined),
      unlisted: (r) => (r.status === 'sent' ? { ...r, status: 'pending' } : undefined),
      revived: (r) => (r.status === 'dead' ? { ...r, status: 'pending' } : undefined),
    };
    const time = fc.integer({ min: T - 600_000, max: T + 600_000 });
    const record = fc.record({
      status: fc.constantFrom<EventStatus>('pending', 'sending', 'sent', 'confirmed', 'dead'),
      sentAt: fc.option(time, { nil: null }),
      confirmedAt: fc.option(time, { nil: undefined }),
    });
    fc.assert(
      fc.property(
        time,
        fc.option(time, { nil: null }),
        record,
        fc.array(fc.tuple(fc.constantFrom(...Object.keys(moves)), fc.nat(120_000)), { maxLength: 8 }),
        (askedAt, modifiedAt, start, steps) => {
          const answer = reading(askedAt, modifiedAt);
          // Dead letters are not read at all: Polar never bills them.
          const counts = (r: Held) => r.status === 'dead' || countedByPortal(r, answer);
          let r: Held = start.status === 'sent' && start.sentAt === null ? { ...start, sentAt: askedAt - 1 } : start;
          let at = askedAt;
          for (const [name, wait] of steps) {
            at += wait;
            const next = moves[name]!(r, at);
            if (!next) continue;
            if (!counts(r)) expect(counts(next)).toBe(false);
            r = next;
          }
        },
      ),
      { seed: 17, numRuns: 2000 },
    );
  });
});
