import type { EventCreateWireShape } from '../storage/serialize.js';

/** Polar's EventCreate as sent on the wire (snake_case). */
export type EventCreateWire = EventCreateWireShape;

export interface IngestResult {
  inserted: number;
  duplicates: number;
  /** The server's clock when it answered (its `Date` header). */
  serverDate?: Date;
}

export interface ListResult {
  items: unknown[];
  pagination: { total_count: number; max_page: number };
  serverDate?: Date;
}

/**
 * How the buffer reaches the server. `httpTransport()` speaks Polar's events API over fetch; any
 * object with these methods works (a test double, a message port to a service worker...).
 * Failures reject with `TransportError` (status, retryAfter in ms, 422 detail).
 */
export interface Transport {
  ingest(events: EventCreateWire[], options: { signal: AbortSignal; keepalive?: boolean }): Promise<IngestResult>;
  list?(query: Record<string, string | number>, options: { signal: AbortSignal }): Promise<ListResult>;
}
