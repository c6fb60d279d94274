/**
 * The crash-and-fault chaos engine behind test/reliability/chaos.test.ts.
 *
 * One run = one seed. It plays a random workload against one database (a fresh fake-indexeddb
 * factory) and the mock Polar server over real HTTP, while it
 * - kills the buffer at random points WITHOUT close(), as a killed tab would: between steps, or in
 *   the middle of a flush (before the request leaves, while it is in flight, after the answer came
 *   but before it was settled, or with the socket torn down). A killed buffer's transport never
 *   settles again and its timers never fire; a new buffer opens on the same IDBFactory + dbName;
 * - sometimes "freezes" a tab instead and resumes it later (a backgrounded tab that comes back):
 *   its late answer and its flush loop then race the newer buffer (two flushers, leases between);
 * - flips the server between healthy, 5xx, 429 with Retry-After, dropped connections (also after
 *   the events were stored: the answer is lost), slow answers (past the client timeout, also after
 *   storing), 401 and offline;
 * - moves the client clock forward and back (small steps and one-hour jumps);
 * - reconciles (a mirror on each tab, all customers or one) while events wait, fly or lost their
 *   answer; tracks identical events (same name, customer, whole-minute timestamp, metadata), which
 *   content matching cannot tell apart; and sends in small batches (1 to 4 events), so parents and
 *   children often travel in different requests.
 *
 * Poison events (the server must refuse them, the client cannot know):
 * - "orphan": `parentId` names an event nobody ever tracked: the server answers 422 "Parent event
 *   not found." (the client cannot check parents it does not hold);
 * - "wire": metadata `{ poison: "yes" }`, which this engine's transport wrapper rewrites to `""` on
 *   the wire only, so the server answers 422 "String should have at least 1 character" for that
 *   event (the client validation would have refused `""` itself, so the wrapper plants it after it).
 * Children of poison events are poison too (dead-lettered because their parent is).
 *
 * At the end (server healthy, clock far enough ahead for every lease and backoff, then one last
 * reconcile): every accepted valid event is stored on the server exactly once (by external_id), every
 * poison event is dead-lettered with the server's message, nothing else is dead-lettered (a valid
 * child dead-lettered "Parent event not found." was sent before its parent), nothing is waiting, and
 * stats() agrees with the server (sent + confirmed).
 */
import { IDBFactory } from 'fake-indexeddb';
import { createEventBuffer } from '../../src/event-buffer.js';
import { isPolarEventBufferError } from '../../src/errors.js';
import { createMirror } from '../../src/mirror/mirror.js';
import type { Mirror } from '../../src/mirror/types.js';
import { httpTransport } from '../../src/transport/http.js';
import type { EventBuffer, BufferedEvent } from '../../src/types.js';
import type { EventCreateWire, IngestResult, Transport } from '../../src/transport/transport.js';
import type { Fault, MockPolarServer } from '../../src/mock-server/index.js';
import { seededRandom, type Rng } from './seeded-random.js';

export const CHAOS_TOKEN = 'chaos-token-3f9a';
const LEASE_MS = 1_000;
const MAX_RETRY_AFTER_MS = 2_000;
const CLIENT_TIMEOUT_MS = 120;
const SLOW_MS = 200;
const HOUR = 3_600_000;
const WIRE_POISON_MSG = 'String should have at least 1 character';
const ORPHAN_POISON_MSG = 'Parent event not found.';

/** Wraps the engine's transport: used to plant deliberate bugs and prove the engine catches them. */
export type TransportVariant = (inner: Transport) => Transport;

export interface ChaosRunResult {
  seed: number;
  /** Events track() accepted. */
  events: number;
  /** Of those, valid ones (must be on the server exactly once). */
  valid: number;
  /** Of those, poison ones and their descendants (must be dead-lettered). */
  poison: number;
  /** Faults injected, by kind. */
  faults: Record<string, number>;
  /** Accepted valid events not on the server. */
  lost: number;
  /** Events stored more than once, or stored though they should not be. */
  duplicated: number;
  /** Valid events dead-lettered "Parent event not found.": children sent before their parent. */
  childBeforeParent: number;
  /** Ingest requests the server answered with duplicates > 0 (resends the server deduped). */
  resentBatches: number;
  /** Every broken promise, in words; empty when the run passed. */
  problems: string[];
}

interface Tracked {
  externalId: string;
  kind: 'valid' | 'orphan' | 'wire' | 'child-of-poison';
  parentId: string | null;
}

/** A buffer "tab". Frozen: its requests never settle and its timers never fire, until resumed (if ever). */
class Tab {
  buffer!: EventBuffer;
  mirror!: Mirror;
  frozen = false;
  ingestCalls = 0;
  killAt: { call: number; phase: KillPhase } | null = null;
  onFrozen: (() => void) | null = null;
  readonly deferred: (() => void)[] = [];
  readonly flushes: Promise<unknown>[] = [];
  #resume: (() => void) | null = null;
  #resumed: Promise<void> | null = null;

  freeze(): void {
    if (this.frozen) return;
    this.frozen = true;
    this.#resumed = new Promise<void>((resolve) => (this.#resume = resolve));
    this.onFrozen?.();
  }

  resume(): void {
    if (!this.frozen) return;
    this.frozen = false;
    this.#resume?.();
    for (const cb of this.deferred.splice(0)) cb();
  }

  /** Resolves at once while running; while frozen, when resumed (never, for a killed tab). */
  gate(): Promise<void> | undefined {
    return this.frozen ? (this.#resumed ?? undefined) : undefined;
  }
}

type KillPhase = 'before-send' | 'in-flight' | 'abort' | 'after-answer';

interface World {
  offset: number;
  maxOffset: number;
  inflight: Set<Promise<unknown>>;
  faults: Record<string, number>;
  problems: string[];
}

function bump(faults: Record<string, number>, kind: string, n = 1): void {
  faults[kind] = (faults[kind] ?? 0) + n;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rewrites `metadata.poison` to `""` on the wire only (a value the server refuses). */
function plantWirePoison(events: EventCreateWire[]): EventCreateWire[] {
  return events.map((e) =>
    e.metadata && (e.metadata as Record<string, unknown>)['poison'] === 'yes'
      ? { ...e, metadata: { ...e.metadata, poison: '' } as NonNullable<EventCreateWire['metadata']> }
      : e,
  );
}

function openTab(world: World, server: MockPolarServer, factory: IDBFactory, dbName: string, variant: TransportVariant | undefined, batchSize: number): Tab {
  const tab = new Tab();
  const http = httpTransport({
    baseUrl: server.url,
    headers: () => ({ Authorization: `Bearer ${CHAOS_TOKEN}` }),
    timeout: CLIENT_TIMEOUT_MS,
  });
  const inner = variant ? variant(http) : http;
  const transport: Transport = {
    async ingest(events, options): Promise<IngestResult> {
      await tab.gate();
      tab.ingestCalls++;
      const kill = tab.killAt && tab.killAt.call === tab.ingestCalls ? tab.killAt.phase : null;
      if (kill === 'before-send') tab.freeze();
      await tab.gate();
      const controller = new AbortController();
      const onAbort = (): void => controller.abort(options.signal.reason);
      options.signal.addEventListener('abort', onAbort, { once: true });
      try {
        const request = inner.ingest(plantWirePoison(events), { signal: controller.signal });
        world.inflight.add(
          request.then(
            () => undefined,
            () => undefined,
          ),
        );
        if (kill === 'in-flight') tab.freeze();
        if (kill === 'abort') {
          tab.freeze();
          controller.abort(new Error('the tab was killed'));
        }
        let answer: IngestResult;
        try {
          answer = await request;
        } catch (error) {
          await tab.gate();
          throw error;
        }
        if (kill === 'after-answer') tab.freeze();
        await tab.gate();
        return answer;
      } finally {
        options.signal.removeEventListener('abort', onAbort);
      }
    },
    async list(query, options) {
      await tab.gate();
      const answer = await inner.list!(query, options);
      await tab.gate();
      return answer;
    },
  };
  // Each tab gets its own factory object around the shared one: the in-page flush lock is keyed by
  // it, so tabs are as separate as tabs without Web Locks are (the per-event leases keep them apart).
  const tabFactory = {
    open: (name: string, version?: number) => factory.open(name, version),
    deleteDatabase: (name: string) => factory.deleteDatabase(name),
    cmp: (a: unknown, b: unknown) => factory.cmp(a, b),
    databases: () => factory.databases(),
  } as unknown as IDBFactory;
  tab.buffer = createEventBuffer({
    transport,
    indexedDB: tabFactory,
    dbName,
    autoFlush: false,
    batchSize,
    leaseDuration: LEASE_MS,
    retry: { retries: 2, minTimeout: 1, maxTimeout: 8, factor: 2, randomize: false, maxRetryAfter: MAX_RETRY_AFTER_MS },
    clock: {
      now: () => Date.now() + world.offset,
      setTimeout: (callback, ms) => {
        const handle = setTimeout(() => (tab.frozen ? tab.deferred.push(callback) : callback()), ms);
        handle.unref?.();
        return handle;
      },
      clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    },
  }) as unknown as EventBuffer;
  tab.mirror = createMirror(tab.buffer);
  tab.buffer.on('error', (error) => {
    if (!tab.frozen && !isPolarEventBufferError(error)) {
      world.problems.push(`"error" reported something outside the error family: ${String(error)}`);
    }
  });
  return tab;
}

const NAMES = ['api_call', 'tokens_used', 'storage_gb', 'seat_added', 'export_run'];
const EXT_CUSTOMERS = ['cust_ana', 'cust_bo', 'cust_chen', 'cust_dee', 'cust_eli'];
/** Customers by Polar id: Polar refuses a customer_id it does not know, so the server must hold them. */
export const UUID_CUSTOMERS = ['9b4f2c7e-1d0a-4c57-8f6e-2b1f0c9d3a11', '0d4e8f2a-6b1c-4a3d-9e5f-7c2b8a1d0e63'];

function randomUuid(rng: Rng): string {
  const hex = (n: number): string => Array.from({ length: n }, () => rng.int(0, 15).toString(16)).join('');
  return `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`;
}

function randomMetadata(rng: Rng): Record<string, unknown> {
  const md: Record<string, unknown> = {};
  const n = rng.int(0, 4);
  for (let i = 0; i < n; i++) {
    const key = rng.pick(['tokens', 'model', 'region', 'ok', 'ratio', 'path', 'émoji', `k${i}`]);
    md[key] = rng.pick([
      () => rng.int(-1000, 1_000_000),
      () => rng.next() * 100,
      () => rng.chance(0.5),
      () => rng.pick(['gpt-4o', 'eu-west-1', '/v1/x', 'naïve ☕', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', 'x'.repeat(rng.int(1, 500))]),
    ])();
  }
  if (rng.chance(0.1)) md['_cost'] = { amount: rng.int(0, 5000), currency: 'usd' };
  return md;
}

/** Runs one seeded chaos scenario. Never throws for a broken promise: it lists it in `problems`. */
export async function runChaos(server: MockPolarServer, seed: number, options: { variant?: TransportVariant } = {}): Promise<ChaosRunResult> {
  const rng = seededRandom(seed);
  const world: World = { offset: 0, maxOffset: 0, inflight: new Set(), faults: {}, problems: [] };
  server.reset();
  server.clearFaults();
  server.setOnline(true);
  const rejectedBefore = server.rejectedConnections;
  const factory = new IDBFactory();
  const dbName = `chaos-${seed}`;
  const tracked = new Map<string, Tracked>();
  const order: Tracked[] = [];
  const zombies: Tab[] = [];
  const batchSize = rng.int(1, 4);
  let tab = openTab(world, server, factory, dbName, options.variant, batchSize);
  let eventsLeft = rng.int(15, 40);
  let seq = 0;

  const guard = async <T>(what: string, promise: Promise<T>, ms = 8_000): Promise<T | undefined> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
    try {
      const outcome = await Promise.race([promise, timeout]);
      if (outcome === 'timeout') {
        world.problems.push(`${what} did not settle within ${ms} ms`);
        return undefined;
      }
      return outcome as T;
    } catch (error) {
      world.problems.push(`${what} threw ${(error as Error)?.name}: ${(error as Error)?.message}`);
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  };

  const makeInput = (): { input: Record<string, unknown>; meta: Tracked } => {
    seq++;
    const input: Record<string, unknown> = { name: rng.pick(NAMES), metadata: randomMetadata(rng) };
    if (rng.chance(0.8)) input['externalCustomerId'] = rng.pick(EXT_CUSTOMERS);
    else input['customerId'] = rng.pick(UUID_CUSTOMERS);
    const at = Date.now() + world.offset;
    if (rng.chance(0.5)) {
      // Identical events: same name, customer, whole-minute timestamp and metadata; only their
      // external_id tells them apart, content matching cannot.
      delete input['customerId'];
      Object.assign(input, { name: NAMES[0], externalCustomerId: EXT_CUSTOMERS[0], metadata: { tokens: 1 } });
      input['timestamp'] = new Date(at - (at % 60_000));
    } else if (rng.chance(0.2)) input['timestamp'] = new Date(at - rng.int(0, 86_400_000));
    if (rng.chance(0.15)) input['externalId'] = `chaos-${seed}-${seq}`;
    let kind: Tracked['kind'] = 'valid';
    let parentId: string | null = null;
    const roll = rng.next();
    if (roll < 0.05) {
      kind = 'orphan';
      parentId = randomUuid(rng);
    } else if (roll < 0.1) {
      kind = 'wire';
      (input['metadata'] as Record<string, unknown>)['poison'] = 'yes';
    } else if (roll < 0.3 && order.length > 0) {
      // Mostly a recent event: one that may still wait, fly, or have lost its answer.
      const parent = rng.chance(0.6) ? rng.pick(order.slice(-4)) : rng.pick(order);
      parentId = parent.externalId;
      if (parent.kind !== 'valid') kind = 'child-of-poison';
    }
    if (parentId !== null) input['parentId'] = parentId;
    return { input, meta: { externalId: '', kind, parentId } };
  };

  const accept = (events: BufferedEvent[], metas: Tracked[]): void => {
    events.forEach((e, i) => {
      const meta = { ...metas[i]!, externalId: e.externalId };
      tracked.set(e.externalId, meta);
      order.push(meta);
    });
  };

  const stepTrack = async (): Promise<void> => {
    const n = Math.min(eventsLeft, rng.int(1, 4));
    if (n <= 0) return;
    eventsLeft -= n;
    const made = Array.from({ length: n }, () => makeInput());
    if (n > 1 && rng.chance(0.5)) {
      const events = await guard('trackMany()', tab.buffer.trackMany(made.map((m) => m.input) as never));
      if (events)
        accept(
          events,
          made.map((m) => m.meta),
        );
    } else {
      // Concurrent track() calls share one coalesced write.
      const events = await guard('track()', Promise.all(made.map((m) => tab.buffer.track(m.input as never))));
      if (events)
        accept(
          events,
          made.map((m) => m.meta),
        );
    }
  };

  const stepFlush = async (): Promise<void> => {
    const flush = tab.buffer.flush();
    tab.flushes.push(flush.catch(() => undefined));
    await guard('flush()', flush);
  };

  const stepReconcile = async (): Promise<void> => {
    bump(world.faults, 'reconcile');
    // Offline or failing, a reconcile fails with a TransportError (after its retries): that is fine.
    const reconcile = tab.mirror.reconcile(rng.chance(0.5) ? undefined : { externalCustomerId: rng.pick(EXT_CUSTOMERS) }).catch((error: unknown) => {
      if (!isPolarEventBufferError(error)) throw error;
      bump(world.faults, 'reconcile failed');
    });
    await guard('reconcile()', reconcile);
  };

  /**
   * An overloaded Polar while the user goes on: a 429 sends the waiting batch away for a second or
   * two, the next events (often identical to it) are stored but every answer is lost, a reconcile
   * runs meanwhile, and the user goes on. Only the ingest answers may decide what was delivered.
   */
  const stepOverload = async (): Promise<void> => {
    bump(world.faults, 'overload burst');
    server.clearFaults();
    server.setOnline(true);
    server.addFaults({ status: 429, retryAfter: rng.int(1, 2), times: 1 });
    await stepFlush();
    await stepTrack();
    server.addFaults({ drop: true, afterProcessing: true, times: 3 });
    await stepFlush();
    server.clearFaults();
    await stepReconcile();
    // The user goes on: children of what just waited are tracked and sent.
    await stepTrack();
    await stepFlush();
  };

  const stepKill = async (): Promise<void> => {
    const dying = tab;
    const zombie = rng.chance(0.3);
    bump(world.faults, zombie ? 'tab frozen (resumed later)' : 'tab killed');
    if (rng.chance(0.7)) {
      // Mid-flush: stop at the k-th request of this flush, at a random phase.
      const phase = rng.pick<KillPhase>(['before-send', 'in-flight', 'abort', 'after-answer']);
      dying.killAt = { call: dying.ingestCalls + rng.int(1, 2), phase };
      const frozen = new Promise<void>((resolve) => (dying.onFrozen = resolve));
      const flush = dying.buffer.flush().catch(() => undefined);
      dying.flushes.push(flush);
      await Promise.race([flush, frozen, sleep(3_000)]);
    }
    dying.freeze();
    if (zombie) zombies.push(dying);
    tab = openTab(world, server, factory, dbName, options.variant, batchSize);
  };

  const stepResume = (): void => {
    const z = zombies.shift();
    if (!z) return;
    z.resume();
    // A frozen flush that never reached its kill point would otherwise kill it at its next request.
    z.killAt = null;
  };

  const stepServer = (): void => {
    const kind = rng.pick([
      'healthy',
      'healthy',
      '5xx',
      '429 Retry-After',
      'dropped connection',
      'dropped after storing',
      '503 after storing',
      'overloaded',
      'overloaded',
      'slow answer',
      'slow answer after storing',
      '401',
      'offline',
    ]);
    server.setOnline(true);
    if (kind === 'healthy') {
      server.clearFaults();
      return;
    }
    if (kind === 'offline') {
      server.setOnline(false);
      bump(world.faults, 'offline period');
      return;
    }
    if (kind === 'overloaded') {
      // A 429 that sends one batch away for a while, then a batch stored whose answer is lost on
      // every try of the flush (its retries too).
      server.addFaults({ status: 429, retryAfter: rng.int(1, 2), times: 1 }, { drop: true, afterProcessing: true, times: 3 });
      return;
    }
    const times = rng.int(1, 3);
    const fault: Fault = {
      '5xx': { status: rng.pick([500, 502, 503, 504]), times },
      '429 Retry-After': { status: 429, retryAfter: rng.pick([0, 1, 2]), times },
      'dropped connection': { drop: true, times },
      'dropped after storing': { drop: true, afterProcessing: true, times },
      '503 after storing': { status: 503, afterProcessing: true, times },
      'slow answer': { delayMs: SLOW_MS, times: 1 },
      'slow answer after storing': { delayMs: SLOW_MS, afterProcessing: true, times: 1 },
      '401': { status: 401, times },
    }[kind]!;
    server.addFaults(fault);
  };

  const stepClock = (): void => {
    const jump = rng.pick([() => rng.int(100, 3_000), () => -rng.int(100, 3_000), () => LEASE_MS + rng.int(1, 500), () => (rng.chance(0.5) ? HOUR : -HOUR)])();
    world.offset += jump;
    world.maxOffset = Math.max(world.maxOffset, world.offset);
    bump(world.faults, jump > 0 ? 'clock moved forward' : 'clock moved back');
  };

  // ---- the workload --------------------------------------------------------------------------
  const steps = rng.int(12, 28);
  for (let i = 0; i < steps || eventsLeft > 0; i++) {
    if (i > 200) break;
    const r = rng.next();
    if (r < 0.3 || (i >= steps && eventsLeft > 0)) await stepTrack();
    else if (r < 0.5) await stepFlush();
    else if (r < 0.57) await stepReconcile();
    else if (r < 0.62) await stepOverload();
    else if (r < 0.7) await stepKill();
    else if (r < 0.85) stepServer();
    else if (r < 0.95) stepClock();
    else stepResume();
  }

  // ---- drain: server healthy, every lease and backoff over ----------------------------------
  server.clearFaults();
  server.setOnline(true);
  for (const z of zombies.splice(0)) {
    z.killAt = null;
    z.resume();
    await guard("a resumed tab's flush", Promise.all(z.flushes));
  }
  world.offset = world.maxOffset + LEASE_MS + MAX_RETRY_AFTER_MS + 100;
  let drained = false;
  for (let i = 0; i < 30 && !drained; i++) {
    const report = await guard('drain flush()', tab.buffer.flush());
    if (!report) break;
    const stats = await guard('stats()', tab.buffer.stats());
    drained = stats !== undefined && stats.pending + stats.sending === 0;
    if (!drained) world.offset += LEASE_MS + MAX_RETRY_AFTER_MS;
  }
  await guard('requests in flight', Promise.all(world.inflight));
  await guard('the last reconcile()', tab.mirror.reconcile());

  // ---- verdict ----------------------------------------------------------------------------------
  const poisonous = (t: Tracked): boolean => t.kind !== 'valid';
  // The server keeps one event per external_id, so "stored twice" cannot be seen there: what can go
  // wrong is an event stored that no track() accepted (or without its external_id), checked below.
  const storedIds = server.storedExternalIds();
  const onServer = new Set(storedIds);
  const dead = new Map<string, BufferedEvent>();
  for (const e of (await guard('deadLetters()', tab.buffer.deadLetters({ limit: 10_000 }))) ?? []) dead.set(e.externalId, e);
  const stats = await guard('stats()', tab.buffer.stats());
  let lost = 0;
  let duplicated = 0;
  let childBeforeParent = 0;
  let valid = 0;
  let poison = 0;
  const problems = world.problems;
  for (const t of tracked.values()) {
    const stored = onServer.has(t.externalId);
    if (!poisonous(t)) {
      valid++;
      if (!stored) {
        lost++;
        problems.push(
          `lost: valid event ${t.externalId} is not on the server${dead.has(t.externalId) ? ` (dead-lettered: ${dead.get(t.externalId)!.error})` : ''}`,
        );
      }
      if (dead.has(t.externalId)) {
        problems.push(`valid event ${t.externalId} was dead-lettered: ${dead.get(t.externalId)!.error}`);
        if (dead.get(t.externalId)!.error?.includes(ORPHAN_POISON_MSG)) childBeforeParent++;
      }
      continue;
    }
    poison++;
    if (stored) {
      duplicated++;
      problems.push(`poison event ${t.externalId} (${t.kind}) is stored on the server`);
    }
    const letter = dead.get(t.externalId);
    if (!letter) {
      problems.push(`poison event ${t.externalId} (${t.kind}) is not dead-lettered`);
      continue;
    }
    const expected = t.kind === 'orphan' ? ORPHAN_POISON_MSG : t.kind === 'wire' ? WIRE_POISON_MSG : 'dead-lettered';
    if (!letter.error?.includes(expected)) {
      problems.push(`poison event ${t.externalId} (${t.kind}) was dead-lettered with "${letter.error}", not the server's "${expected}"`);
    }
  }
  for (const externalId of storedIds) {
    if (externalId === null || !tracked.has(externalId)) {
      duplicated++;
      problems.push(`the server holds ${externalId === null ? 'an event without external_id' : externalId}, which no track() accepted`);
    }
  }
  if (stats) {
    const want = { pending: 0, sending: 0, dead: poison };
    for (const [k, v] of Object.entries(want)) {
      if (stats[k as keyof typeof stats] !== v) problems.push(`stats().${k} is ${stats[k as keyof typeof stats]}, expected ${v}`);
    }
    if (stats.sent + stats.confirmed !== valid) problems.push(`stats() sent ${stats.sent} + confirmed ${stats.confirmed}, expected ${valid} valid events`);
    if (server.events.length !== stats.sent + stats.confirmed) {
      problems.push(`the server holds ${server.events.length} events but stats() sent + confirmed is ${stats.sent + stats.confirmed}`);
    }
  }
  await guard('close()', tab.buffer.close());

  for (const r of server.requests) {
    const f = r.fault;
    if (!f) continue;
    const kind = f.drop
      ? f.afterProcessing
        ? 'dropped after storing'
        : 'dropped connection'
      : f.delayMs
        ? f.afterProcessing
          ? 'slow answer after storing'
          : 'slow answer'
        : f.status === 429
          ? '429 Retry-After'
          : f.status === 401
            ? '401'
            : f.afterProcessing
              ? '503 after storing'
              : '5xx';
    bump(world.faults, kind);
  }
  bump(world.faults, 'connections refused while offline', server.rejectedConnections - rejectedBefore);
  const resentBatches = server.ingestRequests().filter((r) => (r.result?.duplicates ?? 0) > 0).length;
  return { seed, events: tracked.size, valid, poison, faults: world.faults, lost, duplicated, childBeforeParent, resentBatches, problems };
}
