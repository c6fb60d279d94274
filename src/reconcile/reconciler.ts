import type { ResolvedOptions } from '../options.js';
import type { Connection } from '../storage/db.js';
import type { ReconcileOptions, ReconcileReport } from '../types.js';

export interface ReconcilerContext {
  options: ResolvedOptions;
  connection: Connection;
  signal: AbortSignal;
  emitError: (error: Error) => void;
}

/** INTERIM (issue 3 replaces this file): pulls server events into the mirror. */
export class Reconciler {
  readonly #ctx: ReconcilerContext;
  constructor(ctx: ReconcilerContext) {
    this.#ctx = ctx;
  }
  async reconcile(arg?: ReconcileOptions | unknown[]): Promise<ReconcileReport> {
    void this.#ctx;
    void arg;
    throw new Error('reconcile() is not built yet (issue 3)');
  }
  async idle(): Promise<void> {}
}
