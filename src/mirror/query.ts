import type { BufferDatabase } from '../storage/db.js';
import { customerKeysFor, readMerged, type MemberRef } from '../storage/mirror-store.js';
import { STATUSES, type EventRecord, type EventStatus, type MirrorRecord } from '../storage/schema.js';
import { customerKeyOf, mirrorEventOf, toLocalEvent } from '../storage/serialize.js';
import type { LocalEvent, QueryFilter } from './types.js';
import type { Metadata } from '../validation/structs.js';
import { isValidDate, type UserEvent } from './structs.js';

/** Entries returned when the filter sets no `limit`. */
export const DEFAULT_QUERY_LIMIT = 1000;

/** Without a `status` filter: everything but dead letters (see `deadLetters()` for those). */
const DEFAULT_STATUSES: readonly EventStatus[] = ['pending', 'sending', 'sent', 'confirmed'];

const FILTER_KEYS = new Set(['externalCustomerId', 'customerId', 'name', 'memberId', 'externalMemberId', 'since', 'until', 'status', 'limit']);

/**
 * The merged view: mirrored server events and local events not yet confirmed, each once, oldest
 * first. A confirmed local event is one entry (its local record, with `userEvent`); a server event
 * with no local record becomes a `confirmed` entry built from the UserEvent, whose `externalId` is
 * the server `id` (Polar never returns `external_id`).
 */
export async function queryMerged(db: BufferDatabase, filter: QueryFilter, now: number): Promise<LocalEvent[]> {
  const f = checkFilter(filter);
  const keys = f.customerKey === null ? null : await customerKeysFor(db, f.customerKey);
  const entries = await readMerged(db, {
    keys,
    name: f.name,
    member: f.member,
    sinceMs: f.sinceMs,
    untilMs: f.untilMs,
    statuses: f.statuses,
    limit: f.limit,
    now,
  });
  return entries.map((entry) => (entry.kind === 'local' ? toLocalEvent(entry.record) : mirrorEntry(entry.record, entry.local)));
}

/** A mirrored event as an entry: its local record (with `userEvent`) when it confirmed one. */
export function mirrorEntry(record: MirrorRecord, local: EventRecord | undefined): LocalEvent {
  const userEvent = mirrorEventOf(record) as unknown as UserEvent;
  if (local) return { ...toLocalEvent(local), userEvent };
  return {
    externalId: userEvent.id,
    name: userEvent.name,
    externalCustomerId: userEvent.externalCustomerId ?? userEvent.customer?.externalId ?? null,
    customerId: userEvent.customerId ?? userEvent.customer?.id ?? null,
    organizationId: userEvent.organizationId ?? null,
    memberId: (userEvent as { memberId?: string | null }).memberId ?? null,
    externalMemberId: (userEvent as { externalMemberId?: string | null }).externalMemberId ?? null,
    metadata: userEvent.metadata as Metadata,
    timestamp: new Date(record.timestampMs),
    parentId: userEvent.parentId ?? null,
    status: 'confirmed',
    attempts: 0,
    createdAt: new Date(record.timestampMs),
    serverId: userEvent.id,
    error: null,
    nextAttemptAt: null,
    sentAt: null,
    userEvent,
  };
}

export interface CheckedFilter {
  customerKey: string | null;
  name: string | undefined;
  member: MemberRef | undefined;
  sinceMs: number;
  untilMs: number;
  statuses: Set<EventStatus>;
  limit: number;
}

export function checkFilter(filter: unknown): CheckedFilter {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    throw new TypeError('Expected query() to get nothing or a filter object { externalCustomerId?, customerId?, name?, since?, until?, status?, limit? }.');
  }
  const f = filter as Record<string, unknown>;
  for (const key of Object.keys(f)) {
    if (!FILTER_KEYS.has(key)) throw new TypeError(`Unknown query() filter \`${key}\`. Known: ${[...FILTER_KEYS].join(', ')}.`);
  }
  const optionalString = (key: string): string | undefined => {
    const v = f[key];
    if (v !== undefined && (typeof v !== 'string' || v.length === 0)) throw new TypeError(`Expected \`${key}\` to be a non-empty string.`);
    return v as string | undefined;
  };
  const ext = optionalString('externalCustomerId');
  const cus = optionalString('customerId');
  if (ext !== undefined && cus !== undefined) {
    throw new TypeError(
      'Expected only one of `externalCustomerId` and `customerId` (either finds the events of that customer tracked or returned with the other).',
    );
  }
  const name = optionalString('name');
  const memberId = optionalString('memberId');
  const externalMemberId = optionalString('externalMemberId');
  if (memberId !== undefined && externalMemberId !== undefined) throw new TypeError('Expected only one of `memberId` and `externalMemberId`.');
  const date = (key: string, fallback: number): number => {
    const v = f[key];
    if (v === undefined) return fallback;
    if (!isValidDate(v)) throw new TypeError(`Expected \`${key}\` to be a valid Date.`);
    return v.getTime();
  };
  const status = f['status'];
  const list = status === undefined ? DEFAULT_STATUSES : Array.isArray(status) ? status : [status];
  for (const s of list) {
    if (!STATUSES.includes(s as EventStatus)) {
      throw new TypeError(`Expected \`status\` to be one of ${STATUSES.join(', ')} (or an array of them), got ${JSON.stringify(s)}.`);
    }
  }
  const limit = f['limit'] ?? DEFAULT_QUERY_LIMIT;
  if (limit !== Infinity && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1)) {
    throw new TypeError('Expected `limit` to be a positive integer (or Infinity).');
  }
  return {
    customerKey: ext !== undefined ? customerKeyOf({ externalCustomerId: ext }) : cus !== undefined ? customerKeyOf({ customerId: cus }) : null,
    name,
    member: memberId !== undefined ? ['memberId', memberId] : externalMemberId !== undefined ? ['externalMemberId', externalMemberId] : undefined,
    sinceMs: date('since', -Infinity),
    untilMs: date('until', Infinity),
    statuses: new Set(list as EventStatus[]),
    limit: limit as number,
  };
}
