/**
 * The reference model of the model-based test (test/reliability/model.test.ts): what the queue of
 * each device, Polar and each device's mirror should hold, written from CONTRACT.md (revision 3)
 * alone, in plain data. The real buffers are checked against it after every step.
 *
 * - An event leaves `pending` only on an ingest answer that covers it (`sent`) or a 422 that names
 *   it (`dead`); a reconcile never moves a waiting event; it confirms `sent` events that Polar lists
 *   (by content, one server event per local event) and sends again, once, a `sent` event Polar does
 *   not list after the grace period (the server counts it as a duplicate: "held"). An event sent
 *   while the mirror already holds an unlinked server copy of the same content is confirmed by it.
 * - Polar stores an event once per external_id; a batch with a bad event (or a child whose parent it
 *   does not hold) is refused whole; an event is listed `LISTING_LAG` after it was stored while the
 *   lag is on, and a child only once its parent is listed.
 * - A meter counts each matching event once: the device's mirrored server events plus its local
 *   events that are neither confirmed nor dead.
 */

export const MINUTE = 60_000;
/**
 * Time that passes before each reconcile: past the hourly sweep of the look-back window, so every
 * reconcile reads all that Polar lists (which of the older events an incremental read brings is
 * the reconciler's business; the model keeps to what the contract fixes).
 */
export const RECONCILE_GAP = 61 * MINUTE;
/** Virtual ms before Polar lists an event while the lag is on: a couple of reconciles. */
export const LISTING_LAG = 150 * MINUTE;
/** A sent event unlisted this long is sent again: at the second reconcile after its send (never equal to a sum of whole seconds). */
export const GRACE = 90 * MINUTE + 500;
export const LEASE = 30_000;

export type Status = 'pending' | 'sent' | 'confirmed' | 'dead' | 'gone';

/** Who an event is for; `uuid` is typed in upper case, as a user may (Polar answers lower case). */
export const CUSTOMERS = [
  { externalCustomerId: 'cust_ana' },
  { externalCustomerId: 'cust_bo' },
  { customerId: '9B4F2C7E-1D0A-4C57-8F6E-2B1F0C9D3A11' },
] as const;
export type CustomerIndex = 0 | 1 | 2;

export const customerKey = (c: CustomerIndex): string => {
  const ref = CUSTOMERS[c] as { externalCustomerId?: string; customerId?: string };
  return ref.externalCustomerId !== undefined ? `ext:${ref.externalCustomerId}` : `cus:${ref.customerId!.toLowerCase()}`;
};

export const NAMES = ['api_call', 'tokens_used'] as const;
export type Poison = 'none' | 'wire' | 'orphan';
/** The server's words for each kind of bad event (what a dead letter must say). */
export const SERVER_REASON: Record<Exclude<Poison, 'none'>, string> = {
  wire: 'String should have at least 1 character',
  orphan: 'Parent event not found.',
};

export interface ModelEvent {
  externalId: string;
  /** Creation order (the order track() accepted it). */
  seq: number;
  device: number;
  customer: CustomerIndex;
  name: (typeof NAMES)[number];
  tokens: number;
  timestampMs: number;
  /** A local event's externalId, an unknown Polar id (`orphan`), or null. */
  parent: string | null;
  poison: Poison;
  status: Status;
  /** `gone` because clear() removed it (not the sent-event bound). */
  cleared: boolean;
  /** Pending again after the grace period, though Polar holds it. */
  resend: boolean;
  sentAt: number | null;
  /** Polar answered a resend as a duplicate: it is never sent again by a reconcile. */
  held: boolean;
  /** Why it is dead: the server's reason it must carry. */
  reason: string | null;
}

export interface ServerCopy {
  externalId: string;
  listedFrom: number;
  parent: string | null;
  customer: CustomerIndex;
  fingerprint: string;
}

export interface DeviceModel {
  /** Server copies (by the external_id they were stored with) in this device's mirror. */
  mirror: Set<string>;
  /** Copies linked to a confirmed local event. */
  linked: Set<string>;
}

export const fingerprint = (e: Pick<ModelEvent, 'name' | 'customer' | 'timestampMs' | 'tokens'>): string =>
  `${e.name}|${customerKey(e.customer)}|${e.timestampMs}|${e.tokens}`;

/** The two meters of the test, as Polar defines them, and how the model computes each. */
export const METERS = {
  count: {
    meter: { filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'api_call' }] }, aggregation: { func: 'count' } },
    of: (e: { name: string; tokens: number }) => (e.name === 'api_call' ? 1 : 0),
  },
  sum: {
    meter: {
      filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'tokens_used' }] },
      aggregation: { func: 'sum', property: 'tokens' },
    },
    of: (e: { name: string; tokens: number }) => (e.name === 'tokens_used' ? e.tokens : 0),
  },
} as const;

export class ReferenceModel {
  now: number;
  lagOn = false;
  readonly events = new Map<string, ModelEvent>();
  readonly server = new Map<string, ServerCopy>();
  readonly devices: DeviceModel[];
  /** Live tabs per device, as the commands see them (index 0.. in opening order). */
  readonly tabs: { page: boolean }[][];
  seq = 0;

  constructor(
    readonly maxQueueSize: number,
    readonly batchSize: number,
    devices: number,
    start: number,
  ) {
    this.now = start;
    this.devices = Array.from({ length: devices }, () => ({ mirror: new Set<string>(), linked: new Set<string>() }));
    this.tabs = Array.from({ length: devices }, () => [{ page: false }]);
  }

  localOf(device: number): ModelEvent[] {
    return [...this.events.values()].filter((e) => e.device === device).sort((a, b) => a.seq - b.seq);
  }

  waiting(device: number): number {
    return this.localOf(device).filter((e) => e.status === 'pending').length;
  }

  /** How many of `n` track() calls (one write) are accepted; `all` for one trackMany (all or nothing). */
  accepts(device: number, n: number, all: boolean): number {
    const room = Math.max(0, this.maxQueueSize - this.waiting(device));
    return all ? (n <= room ? n : 0) : Math.min(n, room);
  }

  add(e: Omit<ModelEvent, 'seq' | 'status' | 'cleared' | 'resend' | 'sentAt' | 'held' | 'reason'>): ModelEvent {
    const event: ModelEvent = { ...e, seq: this.seq++, status: 'pending', cleared: false, resend: false, sentAt: null, held: false, reason: null };
    this.events.set(e.externalId, event);
    return event;
  }

  // ----- Polar -------------------------------------------------------------------------------

  /** Why Polar refuses this batch (it refuses it whole), or null when it stores it. */
  refusal(ids: readonly string[]): string | null {
    const earlier = new Set<string>();
    for (const id of ids) {
      const e = this.events.get(id)!;
      if (e.poison === 'wire') return SERVER_REASON.wire;
      if (e.parent !== null && !this.server.has(e.parent) && !earlier.has(e.parent)) return SERVER_REASON.orphan;
      earlier.add(id);
    }
    return null;
  }

  /** Polar processes a batch: stores the new events of an acceptable one. Returns whether it did. */
  ingest(ids: readonly string[]): boolean {
    if (this.refusal(ids) !== null) return false;
    for (const id of ids) {
      if (this.server.has(id)) continue;
      const e = this.events.get(id)!;
      this.server.set(id, {
        externalId: id,
        listedFrom: this.lagOn ? this.now + LISTING_LAG : 0,
        parent: e.parent,
        customer: e.customer,
        fingerprint: fingerprint(e),
      });
    }
    return true;
  }

  listed(copy: ServerCopy): boolean {
    for (let c: ServerCopy | undefined = copy; c; c = c.parent === null ? undefined : this.server.get(c.parent)) {
      if (c.listedFrom > this.now) return false;
    }
    return true;
  }

  // ----- the buffer ----------------------------------------------------------------------------

  #dead(e: ModelEvent, reason: string): void {
    e.status = 'dead';
    e.reason = reason;
    e.resend = false;
  }

  /** An ingest answer covered it; a copy of it the mirror already holds (unlinked) confirms it at once. */
  #sent(e: ModelEvent): void {
    e.held ||= e.resend;
    e.status = 'sent';
    e.resend = false;
    e.sentAt = this.now;
    const d = this.devices[e.device]!;
    const copy = [...d.mirror].find((id) => !d.linked.has(id) && this.server.get(id)!.fingerprint === fingerprint(e));
    if (copy !== undefined) {
      d.linked.add(copy);
      e.status = 'confirmed';
    }
  }

  /**
   * A flush against a healthy Polar: every waiting event is sent or dead-lettered, parents before
   * children; then the sent-event bound (maxQueueSize) removes the oldest sent events.
   */
  flush(device: number): void {
    for (const e of this.localOf(device)) {
      if (e.status !== 'pending') continue;
      const parent = e.parent === null ? undefined : this.events.get(e.parent);
      if (parent?.status === 'dead') {
        this.#dead(e, `parent ${parent.externalId} was dead-lettered`);
        continue;
      }
      const refusal = this.refusal([e.externalId]);
      if (refusal !== null) {
        this.#dead(e, refusal);
        continue;
      }
      this.ingest([e.externalId]);
      this.#sent(e);
    }
    this.pruneSent(device);
  }

  /** At the end of each flush: at most maxQueueSize `sent` events are kept, the oldest go first. */
  pruneSent(device: number): void {
    const sent = this.localOf(device).filter((e) => e.status === 'sent');
    for (const e of sent.slice(0, Math.max(0, sent.length - this.maxQueueSize))) e.status = 'gone';
  }

  reconcile(device: number, customer: CustomerIndex | null): void {
    const d = this.devices[device]!;
    const inScope = (c: CustomerIndex) => customer === null || c === customer;
    const copies = [...this.server.values()].filter((c) => inScope(c.customer) && this.listed(c));
    for (const c of copies) d.mirror.add(c.externalId);
    const sentByFingerprint = new Map<string, ModelEvent[]>();
    for (const e of this.localOf(device)) {
      if (e.status === 'sent' && inScope(e.customer)) sentByFingerprint.set(fingerprint(e), [...(sentByFingerprint.get(fingerprint(e)) ?? []), e]);
    }
    for (const c of copies) {
      if (d.linked.has(c.externalId)) continue;
      const candidate = sentByFingerprint.get(c.fingerprint)?.shift();
      if (!candidate) continue;
      candidate.status = 'confirmed';
      d.linked.add(c.externalId);
    }
    for (const e of this.localOf(device)) {
      if (e.status === 'sent' && !e.held && inScope(e.customer) && e.sentAt! + GRACE <= this.now) {
        e.status = 'pending';
        e.resend = true;
      }
    }
  }

  clear(device: number, customer: CustomerIndex | null): void {
    const d = this.devices[device]!;
    for (const e of this.localOf(device)) {
      if (e.status !== 'gone' && (customer === null || e.customer === customer)) {
        e.status = 'gone';
        e.cleared = true;
      }
    }
    for (const id of [...d.mirror]) {
      if (customer === null || this.server.get(id)!.customer === customer) {
        d.mirror.delete(id);
        d.linked.delete(id);
      }
    }
  }

  retryDeadLetters(device: number): number {
    let n = 0;
    for (const e of this.localOf(device)) {
      if (e.status !== 'dead') continue;
      e.status = 'pending';
      e.reason = null;
      n++;
    }
    return n;
  }

  purgeDeadLetters(device: number): number {
    let n = 0;
    for (const e of this.localOf(device)) {
      if (e.status !== 'dead') continue;
      e.status = 'gone';
      e.cleared = true;
      n++;
    }
    return n;
  }

  // ----- what the device shows --------------------------------------------------------------------

  stats(device: number): { waiting: number; sent: number; confirmed: number; dead: number; mirrored: number } {
    const local = this.localOf(device);
    const count = (s: Status) => local.filter((e) => e.status === s).length;
    return { waiting: count('pending'), sent: count('sent'), confirmed: count('confirmed'), dead: count('dead'), mirrored: this.devices[device]!.mirror.size };
  }

  meter(device: number, which: keyof typeof METERS, customer: CustomerIndex | null): number {
    const of = METERS[which].of;
    const inScope = (c: CustomerIndex) => customer === null || c === customer;
    let value = 0;
    for (const id of this.devices[device]!.mirror) {
      const copy = this.server.get(id)!;
      if (inScope(copy.customer)) value += of(this.events.get(id)!);
    }
    for (const e of this.localOf(device)) {
      if ((e.status === 'pending' || e.status === 'sent') && inScope(e.customer)) value += of(e);
    }
    return value;
  }
}
