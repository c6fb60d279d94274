/**
 * The mock server's in-memory event store: stored events (with their `external_id`, which Polar
 * keeps but never returns), known customers, dedupe, parent resolution and list queries.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { MAX_NAME_LENGTH, charLength, costAmountString, formatPydanticTimestamp, formatPythonTimestamp, parseDatetime } from './rules.js';
import type { ValidEvent, ValidationErrorItem } from './rules.js';

/** A customer in Polar's wire shape (snake_case). Unknown extra fields are kept and returned. */
export interface WireCustomer {
  id: string;
  created_at: string;
  modified_at: string | null;
  metadata: Record<string, string | number | boolean>;
  external_id: string | null;
  /** `null` for a team customer created without one (Polar's `CustomerTeamCreate`, since 2026-03). */
  email: string | null;
  email_verified: boolean;
  name: string | null;
  billing_address: {
    line1?: string | null;
    line2?: string | null;
    postal_code?: string | null;
    city?: string | null;
    state?: string | null;
    country: string;
  } | null;
  tax_id: (string | null)[] | null;
  organization_id: string;
  deleted_at: string | null;
  avatar_url: string | null;
  /** Newer fields (the SDK's `Customer` union needs `type` and `billing_name`). */
  type?: 'individual' | 'team';
  billing_name?: string | null;
  locale?: string | null;
  default_payment_method_id?: string | null;
  [extra: string]: unknown;
}

/** A customer to register with the mock server: any omitted field gets a sensible default. */
export type MockCustomerInput = Partial<WireCustomer>;

/** A member of a customer (Polar's member model): `member_id` on events must name one. */
export interface MockMemberInput {
  id?: string;
  /** The customer it belongs to (its id). */
  customer_id: string;
  external_id?: string | null;
  email?: string | null;
  name?: string | null;
  role?: 'owner' | 'billing_manager' | 'member';
}

/** A registered member. */
export interface WireMember {
  id: string;
  customer_id: string;
  external_id: string | null;
  email: string | null;
  name: string | null;
  role: 'owner' | 'billing_manager' | 'member';
}

/** How the store answers lists and writes timestamps (see `MockPolarOptions`). */
export interface StoreSettings {
  /** `'tinybird'`: millisecond bounds and order, ties in no stable order; `'postgres'`: microseconds, ties by arrival. */
  listing: 'tinybird' | 'postgres';
  /** `'pydantic'`: `…07Z` / `…07.123000Z`; `'isoformat'`: `…07.000000+00:00`. */
  timestampFormat: 'pydantic' | 'isoformat';
  /** Source of randomness for the order of same-millisecond events. */
  random: () => number;
}

/** An event as the mock server returns it (Polar's UserEvent / SystemEvent wire shape). */
export interface WireEvent {
  id: string;
  /** Python-style: `2025-06-02T14:03:07.123000+00:00`. */
  timestamp: string;
  organization_id: string;
  customer_id: string | null;
  customer: WireCustomer | null;
  external_customer_id: string | null;
  name: string;
  source: 'user' | 'system';
  metadata: Record<string, unknown>;
  label: string;
  parent_id: string | null;
  child_count: number;
  member_id: string | null;
  external_member_id: string | null;
  [extra: string]: unknown;
}

/**
 * An event to seed directly into the store (`server.addEvents`). Only `name` is required; `timestamp`
 * may be an ISO string (any offset), a `Date` or epoch milliseconds. `external_id` is kept for
 * dedupe and parent lookups (and is never returned, like Polar). `parent_id` may be a server id or
 * a stored external_id. Unknown fields are kept and returned in list items.
 */
export interface SeedEvent {
  name: string;
  id?: string;
  timestamp?: string | Date | number;
  organization_id?: string;
  customer_id?: string | null;
  external_customer_id?: string | null;
  source?: 'user' | 'system';
  metadata?: Record<string, unknown>;
  label?: string;
  parent_id?: string | null;
  member_id?: string | null;
  external_member_id?: string | null;
  external_id?: string | null;
  customer?: unknown;
  child_count?: number;
  [extra: string]: unknown;
}

/** One stored event, internal representation. */
export interface StoredEvent {
  /** Insertion sequence number (0-based), the tie-breaker for equal timestamps. */
  seq: number;
  id: string;
  /** Microseconds since the epoch. */
  timestampMicros: number;
  organizationId: string;
  customerId: string | null;
  externalCustomerId: string | null;
  name: string;
  source: 'user' | 'system';
  metadata: Record<string, unknown>;
  label: string;
  parentId: string | null;
  childCount: number;
  memberId: string | null;
  externalMemberId: string | null;
  /** The idempotency key the event was ingested with; never returned on the wire. */
  externalId: string | null;
  /** Unknown fields of seeded events, returned as they are. */
  extra: Record<string, unknown>;
  /** Real time (ms) from which lists show it: ingest time plus the listing lag; 0 for seeds. */
  listedFrom: number;
  /** A `parent_id` that named no stored event yet (`orphans: 'hidden'`): linked when that event arrives. */
  pendingParent: string | null;
  /** Real time (ms) it was stored: Polar's `ingested_at`, what the customer meter job reads up to. */
  ingestedAt: number;
}

/** Filters of `GET /v1/events/` after parsing; every array is OR-ed, absent means no filter. */
export interface ListFilters {
  externalCustomerIds?: string[];
  customerIds?: string[];
  names?: string[];
  sources?: string[];
  parentId?: string;
  /** Exclusive lower bound, microseconds. */
  startMicros?: number;
  /** Exclusive upper bound, microseconds. */
  endMicros?: number;
  /** Real time (ms): only events listed by then (see {@link EventStore.isListed}). */
  listedAt?: number;
  /** `true` = oldest first. */
  ascending: boolean;
  page: number;
  limit: number;
}

/** Outcome of committing a validated batch. */
export type CommitOutcome =
  | { kind: 'ok'; inserted: number; duplicates: number; stored: StoredEvent[]; linked: StoredEvent[] }
  | { kind: 'server-error'; reason: string };

/** Serialises metadata the way Polar's Python server returns it (reordered keys, decimals as strings). */
function serialiseMetadata(md: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const keys = Object.keys(md).sort().reverse();
  for (const key of keys) {
    const value = md[key];
    if (key === '_cost' && typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const cost = value as Record<string, unknown>;
      out[key] = { ...cost, amount: cost['amount'] === undefined ? cost['amount'] : costAmountString(cost['amount']) };
    } else if (key === '_llm' && typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const llm = value as Record<string, unknown>;
      out[key] = { ...llm, prompt: llm['prompt'] ?? null, response: llm['response'] ?? null };
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** The in-memory store behind one mock server. */
export class EventStore {
  /** Stored events in insertion order. */
  readonly records: StoredEvent[] = [];
  private readonly byId = new Map<string, StoredEvent>();
  private readonly byExternalId = new Map<string, StoredEvent>();
  private readonly customersById = new Map<string, WireCustomer>();
  private readonly membersById = new Map<string, WireMember>();
  /** Children stored before their parent, by the parent reference they wait for. */
  private readonly orphansByRef = new Map<string, StoredEvent[]>();
  private seq = 0;
  private customerCounter = 0;
  /** Orphans linked to a parent since the last `takeLinked()`. */
  private linked: StoredEvent[] = [];

  constructor(
    readonly organizationId: string,
    private readonly nowMs: () => number,
    readonly settings: StoreSettings = { listing: 'tinybird', timestampFormat: 'pydantic', random: Math.random },
  ) {}

  /** A timestamp as this server writes it. */
  formatTime(micros: number): string {
    return this.settings.timestampFormat === 'pydantic' ? formatPydanticTimestamp(micros) : formatPythonTimestamp(micros);
  }

  // ---------------------------------------------------------------- customers

  /** Registers (or replaces, by id) a customer; missing fields get defaults. */
  addCustomer(input: MockCustomerInput): WireCustomer {
    this.customerCounter++;
    const id = input.id ?? randomUUID();
    const customer: WireCustomer = {
      created_at: this.formatTime(this.nowMs() * 1000),
      modified_at: null,
      metadata: {},
      external_id: null,
      email: `customer-${this.customerCounter}@example.com`,
      email_verified: false,
      name: null,
      billing_address: null,
      tax_id: null,
      organization_id: this.organizationId,
      deleted_at: null,
      avatar_url: null,
      type: 'individual',
      locale: null,
      default_payment_method_id: null,
      ...input,
      // Polar: "falls back to the customer name when not explicitly set".
      billing_name: input.billing_name ?? input.name ?? null,
      id: id.toLowerCase(),
    };
    this.customersById.set(customer.id, customer);
    return customer;
  }

  /** All known customers. */
  customers(): WireCustomer[] {
    return [...this.customersById.values()];
  }

  /** The known customer with this id. */
  customerById(id: string): WireCustomer | undefined {
    return this.customersById.get(id.toLowerCase());
  }

  /** Registers (or replaces, by id) a member of a customer. */
  addMember(input: MockMemberInput): WireMember {
    const member: WireMember = {
      external_id: null,
      email: null,
      name: null,
      role: 'member',
      ...input,
      id: (input.id ?? randomUUID()).toLowerCase(),
      customer_id: input.customer_id.toLowerCase(),
    };
    this.membersById.set(member.id, member);
    return member;
  }

  /** The known member with this id. */
  memberById(id: string): WireMember | undefined {
    return this.membersById.get(id.toLowerCase());
  }

  /** Known members. */
  members(): WireMember[] {
    return [...this.membersById.values()];
  }

  customerByExternalId(externalId: string): WireCustomer | undefined {
    for (const c of this.customersById.values()) if (c.external_id === externalId) return c;
    return undefined;
  }

  /** The known customer an event belongs to, by `customer_id` first, then `external_customer_id`. */
  customerOf(e: StoredEvent): WireCustomer | null {
    if (e.customerId !== null) return this.customersById.get(e.customerId) ?? null;
    if (e.externalCustomerId !== null) return this.customerByExternalId(e.externalCustomerId) ?? null;
    return null;
  }

  // ---------------------------------------------------------------- lookups

  /** The stored event with this server id. */
  getById(id: string): StoredEvent | undefined {
    return this.byId.get(id.toLowerCase());
  }

  /** The stored event with this external_id. */
  getByExternalId(externalId: string): StoredEvent | undefined {
    return this.byExternalId.get(externalId);
  }

  /** How many stored events carry each external_id (always 1 by construction; for tests to prove it). */
  countByExternalId(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const r of this.records) {
      if (r.externalId !== null) counts.set(r.externalId, (counts.get(r.externalId) ?? 0) + 1);
    }
    return counts;
  }

  // ---------------------------------------------------------------- writes

  private store(
    e: Omit<StoredEvent, 'seq' | 'childCount' | 'listedFrom' | 'pendingParent' | 'ingestedAt'> & {
      childCount?: number;
      listedFrom?: number;
      pendingParent?: string | null;
    },
  ): StoredEvent {
    const rec: StoredEvent = {
      ...e,
      seq: this.seq++,
      childCount: e.childCount ?? 0,
      listedFrom: e.listedFrom ?? 0,
      pendingParent: e.pendingParent ?? null,
      ingestedAt: Date.now(),
    };
    this.records.push(rec);
    this.byId.set(rec.id, rec);
    if (rec.externalId !== null && !this.byExternalId.has(rec.externalId)) this.byExternalId.set(rec.externalId, rec);
    if (rec.parentId !== null) {
      const parent = this.byId.get(rec.parentId);
      if (parent) parent.childCount++;
    }
    if (rec.pendingParent !== null) {
      const waiting = this.orphansByRef.get(rec.pendingParent) ?? [];
      waiting.push(rec);
      this.orphansByRef.set(rec.pendingParent, waiting);
    }
    // Polar's worker links children that arrived before this parent (by external_id or by id).
    for (const ref of [rec.externalId, rec.id]) {
      const waiting = ref === null ? undefined : this.orphansByRef.get(ref);
      if (!waiting) continue;
      this.orphansByRef.delete(ref!);
      for (const child of waiting) {
        child.parentId = rec.id;
        child.pendingParent = null;
        rec.childCount++;
        this.linked.push(child);
      }
    }
    return rec;
  }

  private resolveParent(ref: string): StoredEvent | undefined {
    return this.byId.get(ref.toLowerCase()) ?? this.byExternalId.get(ref);
  }

  /**
   * Checks `parent_id` of schema-valid events: it must name a stored event's `id`, a stored
   * `external_id`, or the `external_id` of an earlier event of the same batch.
   */
  checkParents(batch: unknown[], valid: ValidEvent[]): ValidationErrorItem[] {
    const errors: ValidationErrorItem[] = [];
    const earlier = new Set<string>();
    const byIndex = new Map(valid.map((v) => [v.index, v]));
    batch.forEach((raw, index) => {
      const v = byIndex.get(index);
      if (v && v.parentId !== null && !this.resolveParent(v.parentId) && !earlier.has(v.parentId)) {
        errors.push({
          type: 'parent_not_found',
          loc: ['body', 'events', index, 'parent_id'],
          msg: 'Parent event not found.',
          input: v.parentId,
        });
      }
      const ext = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)['external_id'] : undefined;
      if (typeof ext === 'string') earlier.add(ext);
    });
    return errors;
  }

  /**
   * Stores a validated batch atomically: events whose external_id is already stored (or appears
   * earlier in the batch) are duplicates; a new event with a name over 128 characters makes the
   * whole batch fail like Polar's database does (nothing stored).
   */
  commit(events: ValidEvent[], nowMicros: number, listedFrom = 0): CommitOutcome {
    // (An unknown parent_id only reaches here with `orphans: 'hidden'`: the event waits for it.)
    const seen = new Set<string>();
    const fresh: ValidEvent[] = [];
    let duplicates = 0;
    for (const e of events) {
      if (e.externalId !== null) {
        if (this.byExternalId.has(e.externalId) || seen.has(e.externalId)) {
          duplicates++;
          continue;
        }
        seen.add(e.externalId);
      }
      fresh.push(e);
    }
    const tooLong = fresh.find((e) => charLength(e.name) > MAX_NAME_LENGTH);
    if (tooLong) {
      return { kind: 'server-error', reason: `value too long for type character varying(${MAX_NAME_LENGTH})` };
    }
    const stored: StoredEvent[] = [];
    this.linked = [];
    for (const e of fresh) {
      // Polar stores the reference as sent: an event sent with external_customer_id keeps
      // customer_id null (its `customer` is still resolved, by external id, when serialised).
      const customerId = e.customerId;
      const parent = e.parentId === null ? undefined : this.resolveParent(e.parentId);
      stored.push(
        this.store({
          id: randomUUID(),
          timestampMicros: e.timestampMicros ?? nowMicros,
          organizationId: this.organizationId,
          customerId,
          externalCustomerId: e.externalCustomerId,
          name: e.name,
          source: 'user',
          metadata: e.metadata,
          label: e.name,
          parentId: parent?.id ?? null,
          pendingParent: e.parentId !== null && !parent ? e.parentId : null,
          memberId: e.memberId,
          externalMemberId: e.externalMemberId,
          externalId: e.externalId,
          extra: {},
          listedFrom,
        }),
      );
    }
    const linked = this.linked;
    this.linked = [];
    return { kind: 'ok', inserted: stored.length, duplicates, stored, linked };
  }

  /** Seeds events directly, bypassing validation (see {@link SeedEvent}). */
  seed(events: SeedEvent[]): StoredEvent[] {
    return events.map((input) => {
      const {
        name,
        id,
        timestamp,
        organization_id,
        customer_id,
        external_customer_id,
        source,
        metadata,
        label,
        parent_id,
        member_id,
        external_member_id,
        external_id,
        customer: _customer,
        child_count: _childCount,
        ...extra
      } = input;
      let micros = this.nowMs() * 1000;
      if (timestamp instanceof Date) micros = timestamp.getTime() * 1000;
      else if (typeof timestamp === 'number') micros = timestamp * 1000;
      else if (typeof timestamp === 'string') {
        const parsed = parseDatetime(timestamp);
        if (!parsed.ok) throw new TypeError(`addEvents: invalid timestamp ${JSON.stringify(timestamp)}`);
        micros = parsed.micros;
      }
      const parent = parent_id ? this.resolveParent(parent_id) : undefined;
      if (external_id && this.byExternalId.has(external_id)) {
        throw new Error(`addEvents: an event with external_id ${JSON.stringify(external_id)} is already stored`);
      }
      const customerId = customer_id ? customer_id.toLowerCase() : null;
      const externalCustomerId = external_customer_id ?? null;
      return this.store({
        id: (id ?? randomUUID()).toLowerCase(),
        timestampMicros: micros,
        organizationId: organization_id ?? this.organizationId,
        customerId,
        externalCustomerId,
        name,
        source: source ?? 'user',
        metadata: metadata ?? {},
        label: label ?? name,
        parentId: parent?.id ?? parent_id ?? null,
        memberId: member_id ?? null,
        externalMemberId: external_member_id ?? null,
        externalId: external_id ?? null,
        extra,
      });
    });
  }

  /** Forgets every stored event (customers are kept). */
  clearEvents(): void {
    this.records.length = 0;
    this.orphansByRef.clear();
    this.byId.clear();
    this.byExternalId.clear();
  }

  // ---------------------------------------------------------------- reads

  /** Serialises a stored event the way Polar's Python server does. */
  serialise(e: StoredEvent): WireEvent {
    const customer = this.customerOf(e);
    return {
      ...e.extra,
      id: e.id,
      timestamp: this.formatTime(e.timestampMicros),
      organization_id: e.organizationId,
      customer_id: e.customerId,
      customer: customer ? structuredClone(customer) : null,
      external_customer_id: e.externalCustomerId,
      member_id: e.memberId,
      external_member_id: e.externalMemberId,
      child_count: e.childCount,
      parent_id: e.parentId,
      label: e.label,
      name: e.name,
      source: e.source,
      metadata: serialiseMetadata(structuredClone(e.metadata)),
    };
  }

  /**
   * Whether lists show the event at real time `atMs`: its listing lag has passed and so has each
   * ancestor's, and none waits for a parent (Polar copies an event to its list store, and counts
   * it in meters, only once the chain to its root is there).
   */
  isListed(e: StoredEvent, atMs: number): boolean {
    for (let cur: StoredEvent | undefined = e, depth = 0; cur && depth < 64; depth++) {
      if (cur.listedFrom > atMs || cur.pendingParent !== null) return false;
      cur = cur.parentId === null ? undefined : this.byId.get(cur.parentId);
    }
    return true;
  }

  /**
   * The customer filters as Polar's list widens them (event/service.py): each `customer_id` adds
   * that customer's external id, each `external_customer_id` adds the ids of the customers holding
   * it, and an event matches when either of its references is in the result (OR).
   */
  private widenCustomers(f: ListFilters): { ids: Set<string>; externals: Set<string> } | null {
    if (!f.customerIds && !f.externalCustomerIds) return null;
    const ids = new Set(f.customerIds ?? []);
    const externals = new Set(f.externalCustomerIds ?? []);
    for (const id of f.customerIds ?? []) {
      const ext = this.customersById.get(id)?.external_id;
      if (ext) externals.add(ext);
    }
    for (const ext of f.externalCustomerIds ?? []) {
      for (const c of this.customersById.values()) if (c.external_id === ext) ids.add(c.id);
    }
    return { ids, externals };
  }

  /** Whether the event's parent chain reaches a root (Polar's `root_id` is set): only then is it processed. */
  isComplete(e: StoredEvent): boolean {
    for (let cur: StoredEvent | undefined = e, depth = 0; cur && depth < 100; depth++) {
      if (cur.pendingParent !== null) return false;
      cur = cur.parentId === null ? undefined : this.byId.get(cur.parentId);
    }
    return true;
  }

  private matches(e: StoredEvent, f: ListFilters, customers: { ids: Set<string>; externals: Set<string> } | null): boolean {
    if (customers) {
      const byId = e.customerId !== null && customers.ids.has(e.customerId);
      const byExternal = e.externalCustomerId !== null && customers.externals.has(e.externalCustomerId);
      if (!byId && !byExternal) return false;
    }
    if (f.listedAt !== undefined && !this.isListed(e, f.listedAt)) return false;
    if (f.names && !f.names.includes(e.name)) return false;
    if (f.sources && !f.sources.includes(e.source)) return false;
    if (f.parentId !== undefined && e.parentId !== f.parentId) return false;
    // Tinybird keeps DateTime64(3): bounds and times compare in whole milliseconds there.
    const time = this.listTime(e.timestampMicros);
    if (f.startMicros !== undefined && !(time > this.listTime(f.startMicros))) return false;
    if (f.endMicros !== undefined && !(time < this.listTime(f.endMicros))) return false;
    return true;
  }

  private listTime(micros: number): number {
    return this.settings.listing === 'tinybird' ? Math.floor(micros / 1000) : micros;
  }

  /**
   * Runs a list query: filter, sort, paginate. Tinybird orders by its millisecond timestamp only, so
   * events of one millisecond come in no stable order from one request to the next (a page boundary
   * inside a millisecond can repeat or skip them); `'postgres'` breaks ties by arrival.
   */
  list(f: ListFilters): { items: WireEvent[]; total: number; maxPage: number } {
    const customers = this.widenCustomers(f);
    const matched = this.records.filter((e) => this.matches(e, f, customers));
    const shuffle = new Map<StoredEvent, number>();
    if (this.settings.listing === 'tinybird') for (const e of matched) shuffle.set(e, this.settings.random());
    matched.sort((a, b) => {
      const ta = this.listTime(a.timestampMicros);
      const tb = this.listTime(b.timestampMicros);
      const d = f.ascending ? ta - tb : tb - ta;
      if (d !== 0) return d;
      return this.settings.listing === 'tinybird' ? shuffle.get(a)! - shuffle.get(b)! : a.seq - b.seq;
    });
    const start = (f.page - 1) * f.limit;
    return {
      items: matched.slice(start, start + f.limit).map((e) => this.serialise(e)),
      total: matched.length,
      maxPage: Math.ceil(matched.length / f.limit),
    };
  }
}
