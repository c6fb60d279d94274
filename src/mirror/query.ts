import { dateArg, enumArg, numberArg, objectArg, oneOf, stringArg } from '../check.js';
import type { BufferDatabase } from '../storage/db.js';
import { customerKeysFor, readMerged, type MemberRef } from '../storage/mirror-store.js';
import { STATUSES, type EventRecord, type EventStatus, type MirrorRecord } from '../storage/schema.js';
import { customerKeyOf, mirrorEventOf, toLocalEvent } from '../storage/serialize.js';
import type { LocalEvent, QueryFilter } from './types.js';
import type { Metadata } from '../validation/structs.js';
import type { UserEvent } from './structs.js';

/** Entries returned when the filter sets no `limit`. */
export const DEFAULT_QUERY_LIMIT = 1000;

/** Without a `status` filter: everything but dead letters (see `deadLetters()` for those). */
const DEFAULT_STATUSES: readonly EventStatus[] = ['pending', 'sending', 'sent', 'confirmed'];

const FILTER_KEYS = ['externalCustomerId', 'customerId', 'name', 'memberId', 'externalMemberId', 'since', 'until', 'status', 'limit'];

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
  const f = objectArg('filter', filter, FILTER_KEYS, '');
  const ext = stringArg('externalCustomerId', f['externalCustomerId']);
  const cus = stringArg('customerId', f['customerId']);
  oneOf(f, 'externalCustomerId', 'customerId');
  const name = stringArg('name', f['name']);
  const memberId = stringArg('memberId', f['memberId']);
  const externalMemberId = stringArg('externalMemberId', f['externalMemberId']);
  oneOf(f, 'memberId', 'externalMemberId');
  const date = (key: string, fallback: number): number => dateArg(key, f[key])?.getTime() ?? fallback;
  const status = f['status'];
  const list = status === undefined ? DEFAULT_STATUSES : Array.isArray(status) ? status : [status];
  for (const s of list) enumArg('status', s, STATUSES);
  const limit = numberArg('limit', f['limit'], [1, Infinity, DEFAULT_QUERY_LIMIT, 1]);
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
