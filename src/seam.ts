import type { Clock, RetryOptions } from './options.js';
import type { Connection } from './storage/db.js';
import type { Durability } from './storage/schema.js';
import type { Transport } from './transport/transport.js';
import type { ChangeEvent } from './types.js';

/**
 * The internal way the read path (`./mirror`) reaches the write path, so the buffer's public API
 * carries nothing of reconcile or query and the write path imports nothing of the mirror.
 */
export interface Seam {
  readonly connection: Connection;
  readonly transport: Transport;
  readonly retry: Required<RetryOptions>;
  readonly clock: Clock;
  readonly durability: Durability;
  readonly closed: boolean;
  /** Tells this buffer's listeners and the other tabs that the stored data changed. */
  changed(reason: ChangeEvent['reason']): void;
  /** The buffer's `"change"` events: local ones and those of other tabs. */
  onChange(listener: (event: ChangeEvent) => void): () => void;
  /** A mirror the buffer closes before its database, and asks for room when the disk is full. */
  attach(reader: Reader): () => void;
}

export interface Reader {
  close(): Promise<void>;
  /** Frees storage the server can give back; resolves to how many records went. */
  relieve(): Promise<number>;
}

const seams = new WeakMap<object, Seam>();

export function register(buffer: object, seam: Seam): void {
  seams.set(buffer, seam);
}

export function seamOf(buffer: unknown): Seam {
  const seam = typeof buffer === 'object' && buffer !== null ? seams.get(buffer) : undefined;
  if (!seam) throw new TypeError('Expected a buffer made by createEventBuffer().');
  return seam;
}
