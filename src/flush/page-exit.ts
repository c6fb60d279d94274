import type { EventRecord } from '../storage/schema.js';
import type { EventCreateWire, Transport } from '../transport/transport.js';
import { KEEPALIVE_MAX_BYTES } from './flusher.js';

const BODY_OVERHEAD = '{"events":[]}'.length;

/**
 * The last chance when the page goes away (`pagehide`): by then only work that starts
 * synchronously gets out (an IndexedDB read would never complete), so this keeps, in memory, the
 * events this page tracked that no flush has reported sent, and sends the oldest of them with
 * `fetch(..., { keepalive: true })` within the 64 KB keepalive budget.
 *
 * Nothing here changes IndexedDB: the events stay pending until a flush is acknowledged, so a
 * last-chance send that never lands is sent again later, and one that did land is counted by the
 * server as a duplicate (same `external_id`).
 */
export class PageExitSender {
  #unsent: EventRecord[] = [];
  readonly #limit: number;

  constructor(limit = 1000) {
    this.#limit = limit;
  }

  get size(): number {
    return this.#unsent.length;
  }

  remember(records: EventRecord[]): void {
    this.#unsent.push(...records);
    if (this.#unsent.length > this.#limit) this.#unsent.splice(0, this.#unsent.length - this.#limit);
  }

  /** A mark before a flush; `forgetUpTo(mark)` after a flush that left nothing waiting. */
  mark(): number {
    return this.#unsent.length;
  }

  forgetUpTo(mark: number): void {
    this.#unsent.splice(0, Math.min(mark, this.#unsent.length));
  }

  forgetAll(): void {
    this.#unsent = [];
  }

  /** Starts one keepalive ingest synchronously; returns how many events it carries (0: nothing to send). */
  send(transport: Transport, toWire: (record: EventRecord) => EventCreateWire, maxBytes: number = KEEPALIVE_MAX_BYTES): number {
    const events: EventCreateWire[] = [];
    let bytes = BODY_OVERHEAD;
    for (const record of this.#unsent) {
      const extra = record.bytes + (events.length > 0 ? 1 : 0);
      if (bytes + extra > maxBytes) break;
      bytes += extra;
      events.push(toWire(record));
    }
    if (events.length === 0) return 0;
    try {
      // Not awaited: the page is going away. Failures are expected and harmless (still pending).
      transport.ingest(events, { signal: new AbortController().signal, keepalive: true }).catch(() => undefined);
    } catch {
      // A transport that throws synchronously: the events are still in IndexedDB.
    }
    return events.length;
  }
}
