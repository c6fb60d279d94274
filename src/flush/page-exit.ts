import type { EventRecord } from '../storage/schema.js';
import { BODY_OVERHEAD_BYTES, toWire } from '../storage/serialize.js';
import type { EventCreateWire, Transport } from '../transport/transport.js';
import { KEEPALIVE_MAX_BYTES } from './flusher.js';

/**
 * The last chance when the page goes away (`pagehide`): by then only work that starts
 * synchronously gets out (an IndexedDB read would never complete), so this holds a copy of the
 * oldest waiting events as storage last showed them: replaced by a read after another tab's change
 * and after each flush, and kept up to date in between by this tab's own writes (IndexedDB
 * completes them in order, so a read and a write never land out of order here). Delivered events
 * drop out the moment their answer is stored, whichever tab sent them.
 *
 * The send is a send like any other: the stored wire bodies (fixed when the events were made, so
 * byte-identical to every other send of them), oldest first within the 64 KB keepalive budget,
 * skipping what does not fit, and a child only in the same request as a waiting parent. Nothing
 * here changes IndexedDB: the events stay pending until an answer is stored, so one that never
 * lands is sent again later, and one that did is counted by the server as a duplicate.
 */
export class PageExitSender {
  /** By externalId, oldest first. */
  #waiting = new Map<string, EventRecord>();
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** What storage holds waiting now (oldest first), replacing the copy. */
  replace(records: EventRecord[]): void {
    this.#waiting = new Map();
    this.add(records);
  }

  /** This tab's new waiting events (written after everything held). */
  add(records: EventRecord[]): void {
    for (const r of records) if (this.#waiting.size < this.#limit) this.#waiting.set(r.externalId, this.#waiting.get(r.externalId) ?? r);
  }

  /** Records this tab just wrote: those no longer pending drop out, the others are updated in place. */
  update(records: EventRecord[]): void {
    for (const r of records) {
      if (r.status !== 'pending') this.#waiting.delete(r.externalId);
      else if (this.#waiting.has(r.externalId)) this.#waiting.set(r.externalId, r);
    }
  }

  /** Starts one keepalive ingest synchronously; returns how many events it carries (0: nothing to send). */
  send(transport: Transport, maxBytes: number = KEEPALIVE_MAX_BYTES): number {
    const events: EventCreateWire[] = [];
    const taken = new Set<string>();
    let bytes = BODY_OVERHEAD_BYTES;
    for (const record of this.#waiting.values()) {
      // A child goes only with its waiting parent (an answered or unknown one is the server's).
      if (record.parentId !== null && this.#waiting.has(record.parentId) && !taken.has(record.parentId)) continue;
      const extra = record.bytes + (events.length > 0 ? 1 : 0);
      if (bytes + extra > maxBytes) continue;
      bytes += extra;
      events.push(toWire(record));
      taken.add(record.externalId);
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
