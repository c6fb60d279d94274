import type { EventCreate } from '../validation/structs.js';

/**
 * Polar's EventCreate as sent on the wire (snake_case).
 * @example
 * const wire: EventCreateWire = { name: 'api_call', external_customer_id: 'user_42', external_id: '0190...', metadata: { tokens: 12 } };
 */
export type EventCreateWire = EventCreate & { timestamp: string; external_id: string };

/**
 * What `Transport.ingest()` resolves with: Polar's `{ inserted, duplicates }`.
 * @example
 * { inserted: 99, duplicates: 1, serverDate: new Date() }
 */
export interface IngestResult {
  inserted: number;
  duplicates: number;
  /** The server's clock when it answered (its `Date` header). */
  serverDate?: Date;
}

/**
 * What `Transport.list()` resolves with: one page of `GET /v1/events/`, items as the server sent them.
 * @example
 * { items: [wireUserEvent], pagination: { total_count: 1, max_page: 1 }, serverDate: new Date() }
 */
export interface ListResult {
  items: unknown[];
  pagination: { total_count: number; max_page: number };
  serverDate?: Date;
}

/**
 * How the buffer reaches the server. `httpTransport()` speaks Polar's events API over fetch; any
 * object with these methods works (a test double, a message port to a service worker...).
 * Failures reject with `TransportError` (status, retryAfter in ms, 422 detail).
 * @example
 * // A test double that accepts everything:
 * const transport: Transport = {
 *   ingest: async (events) => ({ inserted: events.length, duplicates: 0 }),
 * };
 */
export interface Transport {
  ingest(events: EventCreateWire[], options: { signal: AbortSignal; keepalive?: boolean }): Promise<IngestResult>;
  list?(query: Record<string, string | number>, options: { signal: AbortSignal }): Promise<ListResult>;
}
