/**
 * The commands of the model-based test, each run on the real system and on the reference model,
 * then checked (`checkInvariants`) after every step.
 */
import fc from 'fast-check';
import { vi } from 'vitest';
import { isPolarEventBufferError } from '../../../src/errors.js';
import { meterUsage } from '../../../src/meters/index.js';
import type { Fault } from '../../../src/mock-server/index.js';
import type { BufferedEvent } from '../../../src/types.js';
import {
  CUSTOMERS,
  type CustomerIndex,
  LEASE,
  LISTING_LAG,
  METERS,
  MINUTE,
  NAMES,
  type Poison,
  RECONCILE_GAP,
  type ReferenceModel,
  SERVER_REASON,
} from './reference.js';
import type { Call, KillPhase, RealSystem, Tab } from './system.js';

type Cmd = fc.AsyncCommand<ReferenceModel, RealSystem>;

/** Whole minutes before the run starts: events with these timestamps are easily identical. */
const FIXED_AGO = [MINUTE, 2 * MINUTE];
const MAX_TABS = 3;

/** Virtual time passes (every clock reads the faked global Date). */
export function advance(m: ReferenceModel, ms: number): void {
  m.now += ms;
  vi.setSystemTime(m.now);
}

const customerRef = (c: CustomerIndex) => ({ ...CUSTOMERS[c] }) as { externalCustomerId?: string; customerId?: string };
const showCustomer = (c: CustomerIndex | null) => (c === null ? 'all' : Object.values(CUSTOMERS[c])[0]);

// ----- invariants ---------------------------------------------------------------------------------

export async function checkInvariants(m: ReferenceModel, r: RealSystem, step: string): Promise<void> {
  r.steps++;
  const kind = step.replace(/\(.*?\)/, '').replace(/^\d+ s pass$/, 'time passes');
  r.kinds.set(kind, (r.kinds.get(kind) ?? 0) + 1);
  const problems: string[] = r.problems.splice(0).map((p) => `audit: ${p}`);
  // Polar holds each accepted event at most once, exactly those the model says.
  const stored = r.server.storedExternalIds();
  const storedSet = new Set(stored);
  if (storedSet.size !== stored.length) problems.push('Polar stored an external_id twice');
  // What Polar counted agrees: each stored event was counted inserted once, by one request.
  const inserted = r.server.ingestRequests().reduce((n, q) => n + (q.result?.inserted ?? 0), 0);
  if (inserted !== stored.length) problems.push(`Polar counted ${inserted} events inserted but holds ${stored.length}`);
  for (const id of stored) if (id === null || !m.server.has(id)) problems.push(`Polar holds ${id}, which the model does not (never accepted, or refused)`);
  for (const id of m.server.keys())
    if (!storedSet.has(id)) problems.push(`Polar should hold ${id} (${m.events.get(id)!.status} on device ${m.events.get(id)!.device}) but does not`);

  for (let d = 0; d < r.tabs.length; d++) {
    const tab = r.tabs[d]![0]!;
    const want = m.stats(d);
    const got = await tab.buffer.stats();
    const seen = { waiting: got.pending + got.sending, sending: got.sending, sent: got.sent, confirmed: got.confirmed, dead: got.dead, mirrored: got.mirrored };
    const expected = { ...want, sending: 0 };
    for (const k of Object.keys(expected) as (keyof typeof expected)[]) {
      if (seen[k] !== expected[k]) problems.push(`device ${d}: stats() ${k} is ${seen[k]}, the model says ${expected[k]}`);
    }
    const letters = new Map((await tab.buffer.deadLetters({ limit: 10_000 })).map((e) => [e.externalId, e]));
    for (const e of m.localOf(d)) {
      if (e.status !== 'dead') continue;
      const letter = letters.get(e.externalId);
      if (!letter) {
        problems.push(`device ${d}: ${e.externalId} should be a dead letter ("${e.reason}")`);
        continue;
      }
      const root = e.reason!.startsWith('parent ') ? [e.parent!, ...Object.values(SERVER_REASON)] : [e.reason!];
      if (!root.some((words) => letter.error?.includes(words)))
        problems.push(`device ${d}: dead letter ${e.externalId} says "${letter.error}", not "${e.reason}"`);
      letters.delete(e.externalId);
    }
    for (const [id, letter] of letters) problems.push(`device ${d}: ${id} is a dead letter ("${letter.error}"); the model says ${m.events.get(id)?.status}`);

    for (const which of ['count', 'sum'] as const) {
      for (const c of [null, (m.seq % 3) as CustomerIndex]) {
        const usage = await meterUsage(tab.mirror, METERS[which].meter, c === null ? {} : customerRef(c));
        const expectedValue = m.meter(d, which, c);
        if (usage.value !== expectedValue)
          problems.push(`device ${d}: meterUsage(${which}, ${showCustomer(c)}) is ${usage.value}, the model says ${expectedValue}`);
      }
    }
  }
  if (problems.length > 0) throw new Error(`after ${step}:\n  - ${problems.join('\n  - ')}`);
}

// ----- commands -----------------------------------------------------------------------------------

export interface EventSpec {
  customer: CustomerIndex;
  name: (typeof NAMES)[number];
  tokens: number;
  fixed: number | null;
  parent: number | null;
  poison: Poison;
  orphanOf: string;
}

const specArb: fc.Arbitrary<EventSpec> = fc.record({
  customer: fc.constantFrom<CustomerIndex>(0, 1, 2),
  name: fc.constantFrom(...NAMES),
  tokens: fc.integer({ min: 1, max: 4 }),
  fixed: fc.option(fc.integer({ min: 0, max: FIXED_AGO.length - 1 }), { nil: null, freq: 2 }),
  parent: fc.option(fc.nat(1000), { nil: null, freq: 2 }),
  poison: fc.oneof(
    { weight: 16, arbitrary: fc.constant<Poison>('none') },
    { weight: 1, arbitrary: fc.constant<Poison>('wire') },
    { weight: 1, arbitrary: fc.constant<Poison>('orphan') },
  ),
  orphanOf: fc.uuid({ version: 4 }),
});

const showSpec = (s: EventSpec) =>
  `${s.name}/${showCustomer(s.customer)}/t${s.tokens}${s.fixed !== null ? `/-${s.fixed + 1}min` : ''}${s.parent !== null ? `/parent#${s.parent}` : ''}${s.poison !== 'none' ? `/${s.poison}` : ''}`;

class Track implements Cmd {
  constructor(
    readonly device: number,
    readonly tabPick: number,
    readonly specs: EventSpec[],
    readonly many: boolean,
  ) {}
  check = () => true;
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    await track(m, r, this.device, r.tab(this.device, this.tabPick), this.specs, this.many);
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `${this.many ? 'trackMany' : 'track×'}(d${this.device}t${this.tabPick}, [${this.specs.map(showSpec).join(', ')}])`;
}

async function track(m: ReferenceModel, r: RealSystem, device: number, tab: Tab, specs: EventSpec[], many: boolean): Promise<void> {
  // A parent already dead-lettered is not picked: when the client sets its child aside is its own business.
  const existing = m
    .localOf(device)
    .filter((e) => e.status !== 'dead')
    .map((e) => e.externalId);
  const made = specs.map((s) => ({ s, externalId: many ? r.newId() : undefined, parent: null as string | null }));
  made.forEach((x, i) => {
    if (x.s.poison === 'orphan') x.parent = x.s.orphanOf;
    else if (x.s.parent !== null) {
      const candidates = [...existing, ...(many ? made.slice(0, i).map((y) => y.externalId!) : [])];
      if (candidates.length > 0) x.parent = candidates[x.s.parent % candidates.length]!;
    }
  });
  const inputs = made.map(({ s, externalId, parent }) => ({
    name: s.name,
    ...customerRef(s.customer),
    metadata: { tokens: s.tokens, ...(s.poison === 'wire' ? { poison: 'yes' } : {}) },
    ...(s.fixed !== null ? { timestamp: new Date(m.now - (m.now % MINUTE) - FIXED_AGO[s.fixed]!) } : {}),
    ...(externalId ? { externalId } : {}),
    ...(parent ? { parentId: parent } : {}),
  }));
  const accepted = m.accepts(device, inputs.length, many);
  let outcomes: PromiseSettledResult<BufferedEvent>[];
  if (many) {
    const [all] = await Promise.allSettled([tab.buffer.trackMany(inputs as never)]);
    outcomes = all!.status === 'fulfilled' ? all!.value.map((value) => ({ status: 'fulfilled', value })) : inputs.map(() => all as PromiseRejectedResult);
  } else {
    // Calls made together share one write, and each is judged in call order.
    outcomes = await Promise.allSettled(inputs.map((input) => tab.buffer.track(input as never)));
  }
  const problems: string[] = [];
  outcomes.forEach((o, i) => {
    if (i < accepted && o.status === 'rejected')
      problems.push(`track #${i} was refused with ${o.reason} though ${m.waiting(device)} of ${m.maxQueueSize} wait`);
    if (i >= accepted && o.status === 'fulfilled')
      problems.push(`track #${i} was accepted though the queue is full (${m.waiting(device)} of ${m.maxQueueSize} wait)`);
    if (o.status === 'rejected' && !(isPolarEventBufferError(o.reason) && (o.reason as { code?: string }).code === 'queue-full')) {
      problems.push(`track #${i} failed with ${o.reason} (not a QueueFullError)`);
    }
  });
  if (problems.length > 0) throw new Error(`track on device ${device}:\n  - ${problems.join('\n  - ')}`);
  outcomes.forEach((o, i) => {
    if (o.status !== 'fulfilled') return;
    const { s, parent } = made[i]!;
    m.add({
      externalId: o.value.externalId,
      device,
      customer: s.customer,
      name: s.name,
      tokens: s.tokens,
      timestampMs: o.value.timestamp.getTime(),
      parent,
      poison: s.poison,
    });
  });
}

class TrackTwins implements Cmd {
  /** The same usage on two devices: same name, customer, whole-minute timestamp and metadata. */
  readonly twin: EventSpec;
  constructor(spec: EventSpec) {
    this.twin = { ...spec, fixed: spec.fixed ?? 0, parent: null, poison: 'none' };
  }
  check = (m: Readonly<ReferenceModel>) => m.devices.length > 1;
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    for (let d = 0; d < m.devices.length; d++) await track(m, r, d, r.tab(d, 0), [this.twin], false);
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `twins(${showSpec(this.twin)})`;
}

class Flush implements Cmd {
  constructor(
    readonly device: number,
    readonly tabPick: number,
  ) {}
  check = () => true;
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    await healthyFlush(m, this.device, r.tab(this.device, this.tabPick));
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `flush(d${this.device}t${this.tabPick})`;
}

async function healthyFlush(m: ReferenceModel, device: number, tab: Tab): Promise<void> {
  // Time enough for any backoff or Retry-After (at most 2 s here).
  advance(m, 3_000);
  const report = await tab.buffer.flush();
  m.flush(device);
  if (report.remaining !== 0) throw new Error(`flush on device ${device} left ${report.remaining} waiting (${JSON.stringify(report)})`);
}

class TwoTabsFlush implements Cmd {
  constructor(readonly device: number) {}
  check = (m: Readonly<ReferenceModel>) => m.tabs[this.device]!.length > 1;
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    advance(m, 3_000);
    // One flush at a time per database: whichever gets the lock sends everything.
    await Promise.all(r.tabs[this.device]!.slice(0, 2).map((t) => t.buffer.flush()));
    m.flush(this.device);
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `flush in two tabs at once(d${this.device})`;
}

type FaultKind = '5xx' | '429' | 'dropped' | 'answer lost' | '503 after storing';
const FAULTS: Record<FaultKind, Fault> = {
  '5xx': { status: 500 },
  '429': { status: 429, retryAfter: 1 },
  dropped: { drop: true },
  'answer lost': { drop: true, afterProcessing: true },
  '503 after storing': { status: 503, afterProcessing: true },
};

/** The one request of a flush that a fault ends: which events it carried, and whether Polar processed it. */
async function observedRequest(m: ReferenceModel, tab: Tab, processed: boolean, what: string): Promise<void> {
  const calls = tab.calls;
  if (calls.length > 1) throw new Error(`${what}: ${calls.length} requests, expected at most one`);
  const call = calls[0];
  if (!call) return;
  await call.settled;
  if (!tab.page && call.ids.length > m.batchSize) throw new Error(`${what}: a batch of ${call.ids.length} > batchSize ${m.batchSize}`);
  if (processed) m.ingest(call.ids);
}

class FaultyFlush implements Cmd {
  constructor(
    readonly device: number,
    readonly tabPick: number,
    readonly fault: FaultKind,
  ) {}
  check = () => true;
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    const tab = r.tab(this.device, this.tabPick);
    advance(m, 3_000);
    r.server.addFaults(FAULTS[this.fault]);
    tab.calls = [];
    try {
      await tab.buffer.flush();
    } finally {
      r.server.clearFaults();
    }
    // The fault ends the flush at its first request (retries: 0); nothing is settled as sent.
    await observedRequest(m, tab, this.fault === 'answer lost' || this.fault === '503 after storing', this.toString());
    if (tab.calls.length === 0) m.flush(this.device);
    else m.pruneSent(this.device);
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `flush(d${this.device}t${this.tabPick}) with ${this.fault}`;
}

class Crash implements Cmd {
  constructor(
    readonly device: number,
    readonly tabPick: number,
    readonly phase: KillPhase | 'idle',
  ) {}
  check = () => true;
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    const tab = r.tab(this.device, this.tabPick);
    const index = r.tabs[this.device]!.indexOf(tab);
    tab.calls = [];
    if (this.phase !== 'idle') {
      advance(m, 3_000);
      const killed = new Promise<Call | null>((resolve) => (tab.kill = { phase: this.phase as KillPhase, done: resolve }));
      const flush = tab.buffer.flush().then(() => 'finished' as const);
      const outcome = await Promise.race([flush, killed]);
      if (outcome === 'finished') {
        // Nothing was due: the flush ended before any request.
        tab.kill = null;
        m.flush(this.device);
      } else if (outcome !== null) {
        // In flight: Polar got it and answered; the tab never learnt.
        m.ingest(outcome.ids);
      }
    }
    if (!tab.dead) r.killTab(tab);
    m.tabs[this.device]!.splice(index, 1);
    // The user reloads: the dead tab's claim and flush lease expire.
    advance(m, LEASE + 1_000);
    if (r.tabs[this.device]!.length === 0) {
      r.tabs[this.device]!.push(r.openTab(this.device, false));
      m.tabs[this.device]!.push({ page: false });
    }
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `crash(d${this.device}t${this.tabPick}, ${this.phase})`;
}

class OpenTab implements Cmd {
  constructor(
    readonly device: number,
    readonly page: boolean,
  ) {}
  check = (m: Readonly<ReferenceModel>) => m.tabs[this.device]!.length < MAX_TABS;
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    r.tabs[this.device]!.push(r.openTab(this.device, this.page));
    m.tabs[this.device]!.push({ page: this.page });
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `open ${this.page ? 'a page' : 'a tab'}(d${this.device})`;
}

class PageExit implements Cmd {
  constructor(readonly device: number) {}
  check = (m: Readonly<ReferenceModel>) => m.tabs[this.device]!.some((t) => t.page);
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    const tab = r.tabs[this.device]!.find((t) => t.page)!;
    const index = r.tabs[this.device]!.indexOf(tab);
    tab.calls = [];
    // The page goes away: only what starts in the pagehide handler gets out, then it is gone.
    tab.target!.dispatchEvent(new Event('pagehide'));
    r.killTab(tab);
    m.tabs[this.device]!.splice(index, 1);
    for (const call of tab.calls) {
      await call.settled;
      m.ingest(call.ids);
    }
    advance(m, LEASE + 1_000);
    if (r.tabs[this.device]!.length === 0) {
      r.tabs[this.device]!.push(r.openTab(this.device, false));
      m.tabs[this.device]!.push({ page: false });
    }
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `page exit(d${this.device})`;
}

class Reconcile implements Cmd {
  constructor(
    readonly device: number,
    readonly tabPick: number,
    readonly customer: CustomerIndex | null,
  ) {}
  check = () => true;
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    const tab = r.tab(this.device, this.tabPick);
    advance(m, RECONCILE_GAP);
    await tab.mirror.reconcile(this.customer === null ? undefined : customerRef(this.customer));
    m.reconcile(this.device, this.customer);
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `reconcile(d${this.device}t${this.tabPick}, ${showCustomer(this.customer)})`;
}

class ListingLag implements Cmd {
  constructor(readonly on: boolean) {}
  check = () => true;
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    m.lagOn = this.on;
    r.server.setListingLag(this.on ? LISTING_LAG : 0);
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `listing lag ${this.on ? 'on' : 'off'}`;
}

class TimePasses implements Cmd {
  constructor(readonly seconds: number) {}
  check = () => true;
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    advance(m, this.seconds * 1000);
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `${this.seconds} s pass`;
}

class Clear implements Cmd {
  constructor(
    readonly device: number,
    readonly tabPick: number,
    readonly customer: CustomerIndex | null,
  ) {}
  check = () => true;
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    await r.tab(this.device, this.tabPick).buffer.clear(this.customer === null ? undefined : customerRef(this.customer));
    m.clear(this.device, this.customer);
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `clear(d${this.device}t${this.tabPick}, ${showCustomer(this.customer)})`;
}

class DeadLetters implements Cmd {
  constructor(
    readonly device: number,
    readonly tabPick: number,
    readonly purge: boolean,
  ) {}
  check = () => true;
  async run(m: ReferenceModel, r: RealSystem): Promise<void> {
    const tab = r.tab(this.device, this.tabPick);
    // A page tab (autoFlush) flushes once dead letters are back in the queue.
    const flushed = new Promise<void>((resolve) => {
      const off = tab.buffer.on('flush', () => (off(), resolve()));
    });
    const got = this.purge ? await tab.buffer.purgeDeadLetters() : await tab.buffer.retryDeadLetters();
    const want = this.purge ? m.purgeDeadLetters(this.device) : m.retryDeadLetters(this.device);
    if (got !== want) throw new Error(`${this.toString()} returned ${got}, the model says ${want}`);
    if (tab.page && !this.purge && got > 0) {
      await flushed;
      m.flush(this.device);
    }
    await checkInvariants(m, r, this.toString());
  }
  toString = () => `${this.purge ? 'purgeDeadLetters' : 'retryDeadLetters'}(d${this.device}t${this.tabPick})`;
}

// ----- the generator --------------------------------------------------------------------------------

const device = fc.integer({ min: 0, max: 1 });
const tabPick = fc.nat(5);
const customerOrAll = fc.option(fc.constantFrom<CustomerIndex>(0, 1, 2), { nil: null, freq: 2 });

const trackArb = fc.tuple(device, tabPick, fc.array(specArb, { minLength: 1, maxLength: 3 }), fc.boolean()).map(([d, t, s, many]) => new Track(d, t, s, many));
/** An arbitrary listed n times: fc.commands picks each listed arbitrary equally often. */
const repeat = <T>(n: number, arb: fc.Arbitrary<T>): fc.Arbitrary<T>[] => Array.from({ length: n }, () => arb);

export function commandsArb(maxCommands: number, replayPath?: string) {
  return fc.commands(
    [
      ...repeat(4, trackArb),
      specArb.map((s) => new TrackTwins(s)),
      ...repeat(
        2,
        fc.tuple(device, tabPick).map(([d, t]) => new Flush(d, t)),
      ),
      device.map((d) => new TwoTabsFlush(d)),
      ...repeat(
        2,
        fc
          .tuple(device, tabPick, fc.constantFrom<FaultKind>('5xx', '429', 'dropped', 'answer lost', 'answer lost', '503 after storing'))
          .map(([d, t, f]) => new FaultyFlush(d, t, f)),
      ),
      fc.tuple(device, tabPick, fc.constantFrom<KillPhase | 'idle'>('idle', 'before-send', 'in-flight')).map(([d, t, p]) => new Crash(d, t, p)),
      fc.tuple(device, fc.boolean()).map(([d, page]) => new OpenTab(d, page)),
      device.map((d) => new OpenTab(d, true)),
      ...repeat(
        3,
        device.map((d) => new PageExit(d)),
      ),
      ...repeat(
        2,
        fc.tuple(device, tabPick, customerOrAll).map(([d, t, c]) => new Reconcile(d, t, c)),
      ),
      fc.boolean().map((on) => new ListingLag(on)),
      fc.constantFrom(1, 20, 45, 70, 150).map((s) => new TimePasses(s)),
      fc.tuple(device, tabPick, customerOrAll).map(([d, t, c]) => new Clear(d, t, c)),
      fc.tuple(device, tabPick, fc.boolean()).map(([d, t, purge]) => new DeadLetters(d, t, purge)),
    ],
    { maxCommands, size: 'max', ...(replayPath ? { replayPath } : {}) },
  );
}

/** After the run: Polar healthy and listing, every lease and grace over; then every event must be settled. */
export async function drain(m: ReferenceModel, r: RealSystem): Promise<void> {
  m.lagOn = false;
  r.server.setListingLag(0);
  advance(m, LISTING_LAG + LEASE + 2 * MINUTE);
  for (let round = 0; round < 2; round++) {
    for (let d = 0; d < r.tabs.length; d++) {
      await healthyFlush(m, d, r.tabs[d]![0]!);
      advance(m, RECONCILE_GAP);
      await r.tabs[d]![0]!.mirror.reconcile();
      m.reconcile(d, null);
      await checkInvariants(m, r, `the final drain of device ${d}`);
    }
  }
  const lost = [...m.events.values()].filter((e) => !e.cleared && e.status !== 'dead' && !m.server.has(e.externalId));
  const waiting = [...m.events.values()].filter((e) => e.status === 'pending');
  if (lost.length > 0 || waiting.length > 0) {
    throw new Error(`after the final drain: lost ${lost.map((e) => e.externalId).join(', ') || 'none'}; still waiting ${waiting.length}`);
  }
}
