import type { BufferDatabase } from '../storage/db.js';
import type { LocalEvent, QueryFilter } from '../types.js';

/** INTERIM (issue 3 replaces this file). */
export async function queryMerged(db: BufferDatabase, filter: QueryFilter): Promise<LocalEvent[]> {
  void db;
  void filter;
  throw new Error('query() is not built yet (issue 3)');
}
