import { describe, expect, it } from 'vitest';
import { freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { bufferFactory, input, ManualClock } from './support.js';

const startPolar = useMockPolar();
const make = bufferFactory();
const DAY = 24 * 3600 * 1000;

describe('sent events without a mirror', () => {
  it('keeps sent events for a mirror opened later, for 14 days, then a flush removes them', async () => {
    const polar = await startPolar();
    // The server's clock must follow the buffer's: events 15 days later are not in its future.
    const clock = new ManualClock(Date.now() - 15 * DAY);
    const buffer = make(polar, { indexedDB: freshIndexedDB(), clock });
    await buffer.trackMany([input(0), input(1), input(2)]);
    await buffer.flush();
    clock.advance(13 * DAY);
    await buffer.track(input(3));
    await buffer.flush();
    expect((await buffer.stats()).sent).toBe(4);
    clock.advance(2 * DAY);
    await buffer.track(input(4));
    await buffer.flush();
    // The three sent 15 days ago are gone; the one sent 2 days ago and the new one stay.
    expect(await buffer.stats()).toMatchObject({ sent: 2, pending: 0 });
  });

  it('keeps at most maxQueueSize sent events, removing the oldest first', async () => {
    const polar = await startPolar();
    const buffer = make(polar, { indexedDB: freshIndexedDB(), maxQueueSize: 50 });
    const first = await buffer.trackMany(Array.from({ length: 40 }, (_, i) => input(i)));
    await buffer.flush();
    await buffer.trackMany(Array.from({ length: 40 }, (_, i) => input(40 + i)));
    await buffer.flush();
    expect((await buffer.stats()).sent).toBe(50);
    // The 30 removed are the oldest: the first ones the server acknowledged.
    const ids = await buffer.trackMany(first.slice(0, 31).map((e, i) => ({ ...input(i), externalId: e.externalId })));
    expect(ids.filter((e) => e.status === 'pending')).toHaveLength(30);
  });
});
