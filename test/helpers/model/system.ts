/**
 * The real system of the model-based test: devices (each its own fake-indexeddb factory), tabs
 * (buffers on one device's database), one mock Polar over real HTTP, and one virtual clock (the
 * global `Date`, faked, so Polar's listing lag, leases, backoff and the grace period all read the
 * same time and a run replays exactly).
 *
 * Every ingest a tab makes goes through a wrapper that
 * - audits it against the reference model before it leaves: only waiting events of this device,
 *   a child only after its parent's ingest was answered (or in the same request), and an event
 *   already stored by Polar only byte for byte as Polar stored it (contract rev 3);
 * - plants the "wire" poison (`metadata.poison: "yes"` becomes `""` on the wire: Polar refuses it,
 *   the client could not know);
 * - kills the tab at a chosen point (a crash, or the page going away): a dead tab's requests never
 *   settle, its IndexedDB transactions fail, its timers never matter again.
 */
import { IDBFactory } from 'fake-indexeddb';
import { createEventBuffer } from '../../../src/event-buffer.js';
import { createMirror } from '../../../src/mirror/mirror.js';
import type { Mirror } from '../../../src/mirror/types.js';
import type { MockPolarServer } from '../../../src/mock-server/index.js';
import { httpTransport } from '../../../src/transport/http.js';
import type { EventCreateWire, IngestResult, Transport } from '../../../src/transport/transport.js';
import type { EventBuffer } from '../../../src/types.js';
import { GRACE, LEASE, type ReferenceModel } from './reference.js';

export const MODEL_TOKEN = 'model-token-7c2e';
const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

/** One ingest request a tab made: what it carried and how it ended (once the server answered). */
export interface Call {
  ids: string[];
  keepalive: boolean;
  /** `ok` (2xx), or the failure (a TransportError), once Polar answered or the connection ended. */
  settled: Promise<'ok' | Error>;
}

export type KillPhase = 'before-send' | 'in-flight';

export class Tab {
  buffer!: EventBuffer;
  mirror!: Mirror;
  /** Where this tab's `pagehide` listener lives (page tabs only). */
  target: EventTarget | undefined;
  dead = false;
  /** Requests of the current command. */
  calls: Call[] = [];
  kill: { phase: KillPhase; done: (call: Call | null) => void } | null = null;
  constructor(
    readonly device: number,
    readonly page: boolean,
  ) {}
}

/** Routes `globalThis.addEventListener` to the tab being created (the scheduler's `pagehide` hook). */
class PageEvents {
  constructing: EventTarget | undefined;
  readonly #owner = new Map<unknown, EventTarget>();
  install(): () => void {
    const g = globalThis as Record<string, unknown>;
    const before = { add: g['addEventListener'], remove: g['removeEventListener'] };
    g['addEventListener'] = (type: string, listener: EventListener) => {
      if (!this.constructing) return;
      this.#owner.set(listener, this.constructing);
      this.constructing.addEventListener(type, listener);
    };
    g['removeEventListener'] = (type: string, listener: EventListener) => {
      this.#owner.get(listener)?.removeEventListener(type, listener);
      this.#owner.delete(listener);
    };
    return () => {
      g['addEventListener'] = before.add;
      g['removeEventListener'] = before.remove;
    };
  }
}
export const pageEvents = new PageEvents();

/** Key order aside, the JSON of a wire event (what Polar stored must be what is sent again). */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );

function plantWirePoison(events: EventCreateWire[]): EventCreateWire[] {
  return events.map((e) =>
    (e.metadata as Record<string, unknown> | undefined)?.['poison'] === 'yes'
      ? { ...e, metadata: { ...e.metadata, poison: '' } as NonNullable<EventCreateWire['metadata']> }
      : e,
  );
}

export class RealSystem {
  readonly factories: IDBFactory[];
  readonly tabs: Tab[][];
  /** Broken promises the audit saw (each fails the run). */
  readonly problems: string[] = [];
  /** Page-exit sends that carried an event already delivered (contract: only waiting events). */
  pageExitStale = 0;
  /** Steps checked (commands run, drain steps included). */
  steps = 0;
  /** Steps by kind, and what the page-exit sends carried (coverage, for the summary). */
  readonly kinds = new Map<string, number>();
  pageExitEvents = 0;
  /** Per device: events whose ingest answer (2xx) reached a live tab. */
  readonly answered: Set<string>[];
  /** The wire body Polar stored, per external_id. */
  readonly storedBody = new Map<string, string>();
  #ids = 0;

  constructor(
    readonly server: MockPolarServer,
    readonly model: ReferenceModel,
    readonly run: number,
    devices: number,
  ) {
    this.factories = Array.from({ length: devices }, () => new IDBFactory());
    this.answered = Array.from({ length: devices }, () => new Set<string>());
    this.tabs = Array.from({ length: devices }, (_, d) => [this.openTab(d, false)]);
  }

  newId(): string {
    return `m${this.run}-${++this.#ids}`;
  }

  tab(device: number, pick: number): Tab {
    const live = this.tabs[device]!;
    return live[pick % live.length]!;
  }

  openTab(device: number, page: boolean): Tab {
    const tab = new Tab(device, page);
    const factory = this.factories[device]!;
    // Each tab its own factory object (the in-page flush lock is keyed by it, as in another tab),
    // and a database whose transactions fail once the tab is dead.
    const tabFactory = {
      open: (name: string, version?: number) => {
        const request = factory.open(name, version);
        request.addEventListener('success', () => {
          const db = request.result;
          const transaction = db.transaction.bind(db);
          db.transaction = ((...args: Parameters<IDBDatabase['transaction']>) => {
            if (tab.dead) throw new DOMException('the tab is gone', 'InvalidStateError');
            return transaction(...args);
          }) as IDBDatabase['transaction'];
        });
        return request;
      },
      deleteDatabase: (name: string) => factory.deleteDatabase(name),
      cmp: (a: unknown, b: unknown) => factory.cmp(a, b),
      databases: () => factory.databases(),
    } as unknown as IDBFactory;
    if (page) tab.target = new EventTarget();
    pageEvents.constructing = tab.target;
    try {
      tab.buffer = createEventBuffer({
        transport: this.#transport(tab),
        indexedDB: tabFactory,
        dbName: 'model',
        // Page tabs listen for `pagehide`; their batch size keeps the batch-full trigger off and
        // flushInterval 0 the timer, so they flush only when told (or when the page goes away).
        autoFlush: page,
        flushInterval: 0,
        batchSize: page ? 1000 : this.model.batchSize,
        maxQueueSize: this.model.maxQueueSize,
        leaseDuration: LEASE,
        retry: { retries: 0, minTimeout: 10, maxTimeout: 100, factor: 2, randomize: false, maxRetryAfter: 2000 },
      }) as unknown as EventBuffer;
    } finally {
      pageEvents.constructing = undefined;
    }
    tab.mirror = createMirror(tab.buffer, { confirmGracePeriod: GRACE });
    return tab;
  }

  /** The tab dies where it stands: no close(), nothing of it runs again. */
  killTab(tab: Tab): void {
    tab.dead = true;
    const live = this.tabs[tab.device]!;
    live.splice(live.indexOf(tab), 1);
    // Stops its scheduler and channel; a flush in flight stays stuck on its dead transport.
    tab.buffer.close().catch(() => undefined);
  }

  #audit(tab: Tab, events: EventCreateWire[], keepalive: boolean): void {
    const inRequest = new Set<string>();
    for (const wire of events) {
      const id = wire.external_id;
      const e = id ? this.model.events.get(id) : undefined;
      if (!id || !e) {
        this.problems.push(`a request carried ${id ?? 'an event without external_id'}, which no track() accepted`);
        continue;
      }
      if (e.device !== tab.device) this.problems.push(`device ${tab.device} sent ${id} of device ${e.device}`);
      if (e.status !== 'pending') {
        if (keepalive) {
          this.pageExitStale++;
          if (process.env['MODEL_DEBUG'])
            console.log(`page exit of d${tab.device} carried ${id} (${e.status}, seq ${e.seq}); run ${this.run}, step ${this.steps}`);
        } else this.problems.push(`${id} was sent while ${e.status} (only waiting events are sent)`);
      }
      const parent = e.parent === null ? undefined : this.model.events.get(e.parent);
      if (parent && parent.status !== 'gone' && !inRequest.has(parent.externalId) && !this.answered[tab.device]!.has(parent.externalId)) {
        this.problems.push(
          `child ${id} was sent${keepalive ? ' (page exit)' : ''} before its parent ${parent.externalId} (${parent.status}) was answered, in another request`,
        );
      }
      const stored = this.storedBody.get(id);
      if (stored !== undefined && stored !== canonical(wire)) {
        this.problems.push(`${id} was sent again with another body than Polar stored:\n    stored ${stored}\n    now    ${canonical(wire)}`);
      }
      inRequest.add(id);
    }
  }

  #transport(tab: Tab): Transport {
    const http = httpTransport({ baseUrl: this.server.url, headers: () => ({ Authorization: `Bearer ${MODEL_TOKEN}` }), timeout: 5000 });
    return {
      ingest: async (events, options): Promise<IngestResult> => {
        if (tab.dead) return never();
        // The reachability probe of a page tab sends nothing.
        if (events.length === 0) return http.ingest(events, options);
        this.#audit(tab, events, !!options.keepalive);
        if (options.keepalive) this.pageExitEvents += events.length;
        const kill = tab.kill;
        if (kill?.phase === 'before-send') {
          tab.kill = null;
          this.killTab(tab);
          kill.done(null);
          return never();
        }
        const request = http.ingest(plantWirePoison(events), options);
        const call: Call = {
          ids: events.map((e) => e.external_id!),
          keepalive: !!options.keepalive,
          settled: request.then(
            () => 'ok' as const,
            (e: Error) => e,
          ),
        };
        tab.calls.push(call);
        // What this request made Polar store (also when the answer was lost) is fixed from now on.
        void call.settled.then(() => {
          const stored = new Set(this.server.storedExternalIds());
          for (const e of events) if (stored.has(e.external_id!) && !this.storedBody.has(e.external_id!)) this.storedBody.set(e.external_id!, canonical(e));
        });
        if (kill?.phase === 'in-flight') {
          tab.kill = null;
          this.killTab(tab);
          void call.settled.then(() => kill.done(call));
          return never();
        }
        let answer: IngestResult;
        try {
          answer = await request;
        } catch (error) {
          if (tab.dead) return never();
          throw error;
        }
        if (tab.dead) return never();
        for (const e of events) this.answered[tab.device]!.add(e.external_id!);
        return answer;
      },
      list: (query, options) => (tab.dead ? never() : http.list!(query, options)),
    };
  }
}
