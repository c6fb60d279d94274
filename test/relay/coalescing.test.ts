import { describe, expect, test, vi } from 'vitest';
import { manualClock, sentBatches, useRelay } from './support.js';

const setup = useRelay();

describe('coalescing', () => {
  test('the ingest requests of devices within one window go to Polar as one request; each device hears its own counts', async () => {
    const clock = manualClock();
    const { polar, relay, post } = await setup({ clock, window: 1000 });

    const alice = post('alice', [
      { name: 'a1', external_id: 'x' },
      { name: 'a2', external_id: 'y' },
    ]);
    const bob = post('bob', [{ name: 'b1', external_id: 'x' }]);
    await vi.waitFor(() => expect(relay.stats().waiting).toBe(2));
    expect(polar.ingestRequests()).toEqual([]);
    clock.advance(1000);

    expect((await alice).body).toEqual({ inserted: 2, duplicates: 0 });
    expect((await bob).body).toEqual({ inserted: 1, duplicates: 0 });
    expect(sentBatches(polar).map((b) => b.map((e) => e['name']))).toEqual([['a1', 'a2', 'b1']]);
    expect(relay.stats()).toMatchObject({ polarRequests: 1, polarIngestRequests: 1, eventsPerPolarRequest: 3, waiting: 0, answered: 2 });
  });

  test("a 422 in a merged batch names only that device's events by its own indices; the rest is resent and stored", async () => {
    const clock = manualClock();
    const { polar, relay, post } = await setup({ clock, window: 1000 });
    // Polar's clock is an hour behind: a timestamp of now is in its future, which only Polar can tell.
    polar.setClockOffset(-3_600_000);
    const now = new Date().toISOString();

    const alice = post('alice', [{ name: 'a1' }, { name: 'a2' }]);
    const bob = post('bob', [{ name: 'b1' }, { name: 'b2', timestamp: now }, { name: 'b3' }]);
    const carol = post('acme_ann', [{ name: 'c1', timestamp: now }]);
    await vi.waitFor(() => expect(relay.stats().waiting).toBe(3));
    clock.advance(1000);

    const [a, b, c] = await Promise.all([alice, bob, carol]);
    expect(a.body).toEqual({ inserted: 2, duplicates: 0 });
    expect(b.status).toBe(422);
    // Polar names the union member before the field: each device reads its own index at loc[2].
    const named = (answer: typeof b) => [...new Set(answer.body.detail.map((d: { loc: unknown[] }) => String(d.loc.slice(0, 3))))];
    expect(named(b)).toEqual(['body,events,1']);
    expect(named(c)).toEqual(['body,events,0']);
    expect(b.body.detail.some((d: { loc: unknown[] }) => d.loc.at(-1) === 'timestamp')).toBe(true);
    // Polar saw the merged batch (refused), then the rest without the refused devices' events.
    expect(sentBatches(polar).map((batch) => batch.map((e) => e['name']))).toEqual([
      ['a1', 'a2', 'b1', 'b2', 'b3', 'c1'],
      ['a1', 'a2'],
    ]);
    expect(polar.events.map((e) => e.name)).toEqual(['a1', 'a2']);
  });

  test("Polar's 429 reaches every device of the batch with Retry-After; real buffers keep their events and back off", async () => {
    const clock = manualClock();
    const { polar, relay, buffer } = await setup({ clock, window: 1000 });
    const alice = buffer('alice');
    const bob = buffer('bob');
    await alice.track({ name: 'a', externalCustomerId: 'alice' });
    await bob.track({ name: 'b', externalCustomerId: 'bob' });
    polar.addFaults({ status: 429, retryAfter: 30 });

    const flushes = Promise.all([alice.flush(), bob.flush()]);
    await vi.waitFor(() => expect(relay.stats().waiting).toBe(2));
    clock.advance(1000);
    const reports = await flushes;

    expect(reports.map((r) => [r.sent, r.remaining, r.stoppedBy])).toEqual([
      [0, 1, 'retry-after'],
      [0, 1, 'retry-after'],
    ]);
    expect([(await alice.stats()).pending, (await bob.stats()).pending]).toEqual([1, 1]);
    expect(polar.ingestRequests().map((r) => r.status)).toEqual([429]);
    expect(relay.stats()).toMatchObject({ rateLimited: 1, answers: { 429: 2 } });

    // The relay itself holds off Polar for the 30 s: a device is told to wait, Polar hears nothing.
    const later = relay.fetch(
      new Request('http://relay/v1/events/ingest', { method: 'POST', headers: { Authorization: 'Bearer alice' }, body: '{"events":[{"name":"c"}]}' }),
    );
    await vi.waitFor(() => expect(relay.stats().waiting).toBe(1));
    clock.advance(1000);
    const answer = await later;
    expect([answer.status, Number(answer.headers.get('retry-after'))]).toEqual([429, 30]);
    expect(polar.ingestRequests()).toHaveLength(1);
  });

  test('a resend of events Polar answered 200 for is a duplicate at once, with no Polar request', async () => {
    const clock = manualClock();
    const { polar, relay, post } = await setup({ clock, window: 1000 });
    const batch = [
      { name: 'a', external_id: 'e1' },
      { name: 'b', external_id: 'e2' },
    ];
    const first = post('alice', batch);
    await vi.waitFor(() => expect(relay.stats().waiting).toBe(1));
    clock.advance(1000);
    expect((await first).body).toEqual({ inserted: 2, duplicates: 0 });

    const again = await post('alice', [...batch, { name: 'b', external_id: 'e2' }]);

    expect(again.body).toEqual({ inserted: 0, duplicates: 3 });
    expect(polar.ingestRequests()).toHaveLength(1);
  });

  test('duplicates the totals cannot place are never guessed: those devices resend, and the resend is answered exactly', async () => {
    // Polar already holds alice's two events (sent by a relay that died before answering).
    const gone = await setup({ window: 0 });
    await gone.post('alice', [
      { name: 'a', external_id: 'e1' },
      { name: 'b', external_id: 'e2' },
    ]);
    const clock = manualClock();
    const { polar, relay, post } = await setup({ clock, window: 1000, polar: gone.polar });

    const alice = post('alice', [
      { name: 'a', external_id: 'e1' },
      { name: 'b', external_id: 'e2' },
    ]);
    const bob = post('bob', [{ name: 'c', external_id: 'e1' }]);
    const carol = post('acme_ann', [
      { name: 'd', external_id: 'e1' },
      { name: 'e', external_id: 'e2' },
      { name: 'f', external_id: 'e3' },
    ]);
    await vi.waitFor(() => expect(relay.stats().waiting).toBe(3));
    clock.advance(1000);
    const answers = await Promise.all([alice, bob, carol]);

    // Polar counted 2 duplicates among 6 events: alice's 2 and carol's 3 could each hold them, bob's 1
    // could be one of them. Nobody can say which, so each is asked to send again (503, Retry-After 1).
    expect(polar.ingestRequests().map((r) => r.result)).toEqual([
      { inserted: 2, duplicates: 0 },
      { inserted: 4, duplicates: 2 },
    ]);
    expect(answers.map((a) => [a.status, a.retryAfter])).toEqual([
      [503, '1'],
      [503, '1'],
      [503, '1'],
    ]);
    // Polar holds all of them now: each resend is exactly all duplicates, and costs Polar nothing.
    expect(
      (
        await post('alice', [
          { name: 'a', external_id: 'e1' },
          { name: 'b', external_id: 'e2' },
        ])
      ).body,
    ).toEqual({ inserted: 0, duplicates: 2 });
    expect((await post('bob', [{ name: 'c', external_id: 'e1' }])).body).toEqual({ inserted: 0, duplicates: 1 });
    expect(polar.ingestRequests()).toHaveLength(2);
    expect(polar.events).toHaveLength(6);
  });

  test('duplicates the totals do pin down are answered at once: all of a batch, or none', async () => {
    const gone = await setup({ window: 0 });
    await gone.post('alice', [{ name: 'a', external_id: 'e1' }]);
    await gone.post('bob', [{ name: 'b', external_id: 'e1' }]);
    const clock = manualClock();
    const { relay, post } = await setup({ clock, window: 1000, polar: gone.polar });

    const resends = [post('alice', [{ name: 'a', external_id: 'e1' }]), post('bob', [{ name: 'b', external_id: 'e1' }])];
    await vi.waitFor(() => expect(relay.stats().waiting).toBe(2));
    clock.advance(1000);

    expect((await Promise.all(resends)).map((a) => a.body)).toEqual([
      { inserted: 0, duplicates: 1 },
      { inserted: 0, duplicates: 1 },
    ]);
  });

  test('a spent budget answers 429 with Retry-After after maxWait, and Polar is not called', async () => {
    const clock = manualClock();
    // 6 a minute: one token in the bucket, the next in 10 s.
    const { polar, relay, post } = await setup({ clock, window: 1000, budget: 6, maxWait: 5000 });
    const first = post('alice', [{ name: 'a' }]);
    await vi.waitFor(() => expect(relay.stats().waiting).toBe(1));
    clock.advance(1000);
    expect((await first).status).toBe(200);

    const second = post('bob', [{ name: 'b' }]);
    await vi.waitFor(() => expect(relay.stats().waiting).toBe(1));
    clock.advance(1000);
    const answer = await second;

    expect([answer.status, answer.retryAfter]).toEqual([429, '9']);
    expect(polar.ingestRequests()).toHaveLength(1);
  });

  test('reads spend the same budget, and a device is told to wait when it is spent', async () => {
    const clock = manualClock();
    const { polar, url } = await setup({ clock, budget: 6 });
    const list = () => fetch(`${url}/v1/events/?limit=10`, { headers: { Authorization: 'Bearer alice' } });

    expect((await list()).status).toBe(200);
    const refused = await list();

    expect([refused.status, refused.headers.get('retry-after')]).toEqual([429, '10']);
    expect(polar.requests.filter((r) => r.kind === 'list')).toHaveLength(1);
  });

  test('a connection to Polar that fails before any answer is tried once more; a second failure is a 502 and the device keeps its events', async () => {
    const { polar, post, events } = await setup({ window: 0 });
    polar.addFaults({ drop: true });

    expect((await post('alice', [{ name: 'a', external_id: 'e1' }])).body).toEqual({ inserted: 1, duplicates: 0 });
    polar.addFaults({ drop: true, times: 2 });
    const failed = await post('alice', [{ name: 'b', external_id: 'e2' }]);

    expect(failed.status).toBe(502);
    expect(polar.ingestRequests().map((r) => r.status)).toEqual([null, 200, null, null]);
    expect(polar.events.map((e) => e.name)).toEqual(['a']);
    expect(events.filter((e) => e.type === 'error').map((e) => e.type === 'error' && e.message)).toEqual([
      'Polar could not be reached (POST /v1/events/ingest)',
    ]);
  });

  test('close() sends what waits, answers every device, and refuses what comes after', async () => {
    const clock = manualClock();
    const { polar, relay, post } = await setup({ clock, window: 60_000 });
    const waiting = post('alice', [{ name: 'a' }]);
    await vi.waitFor(() => expect(relay.stats().waiting).toBe(1));

    await relay.close();

    expect((await waiting).body).toEqual({ inserted: 1, duplicates: 0 });
    expect(polar.events.map((e) => e.name)).toEqual(['a']);
    expect((await post('alice', [{ name: 'b' }])).status).toBe(503);
  });
});
