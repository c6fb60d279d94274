import { afterEach, describe, expect, it } from 'vitest';
import { ChangeChannel, type ChangeReason } from '../../src/coordination/channel.js';
import { ManualClock } from '../event-buffer/support.js';

const open: ChangeChannel[] = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

function pair(clock: ManualClock) {
  const name = `channel-test-${Math.random().toString(36).slice(2)}`;
  const received: ChangeReason[] = [];
  const sender = new ChangeChannel(name, () => undefined, clock);
  const receiver = new ChangeChannel(name, (e) => received.push(e.reason), clock);
  open.push(sender, receiver);
  return { sender, received };
}

/** BroadcastChannel delivers on a later task. */
const settle = () => new Promise((r) => setTimeout(r, 30));

describe('ChangeChannel', () => {
  it('posts the first change at once and gathers a burst into one post per reason at the end of the window', async () => {
    const clock = new ManualClock();
    const { sender, received } = pair(clock);
    sender.post({ reason: 'track' });
    await settle();
    expect(received).toEqual(['track']);
    for (let i = 0; i < 20; i++) sender.post({ reason: 'track' });
    sender.post({ reason: 'flush' });
    await settle();
    expect(received).toEqual(['track']);
    clock.advance(50);
    await settle();
    expect(received).toEqual(['track', 'track', 'flush']);
    // The window stays open while changes keep coming, and closes after a quiet one.
    clock.advance(50);
    sender.post({ reason: 'reconcile' });
    await settle();
    expect(received).toEqual(['track', 'track', 'flush', 'reconcile']);
  });

  it('posts the changes still held when it is closed', async () => {
    const clock = new ManualClock();
    const { sender, received } = pair(clock);
    sender.post({ reason: 'track' });
    sender.post({ reason: 'clear' });
    sender.close();
    await settle();
    expect(received).toEqual(['track', 'clear']);
    expect(clock.timers.size).toBe(0);
  });
});
