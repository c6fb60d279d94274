import { mirrorSeam } from '../mirror/mirror.js';
import type { Mirror } from '../mirror/types.js';
import type { EventRecord } from '../storage/schema.js';
import { balanceOf, balanceSetup, readHeld, readPortal, uncounted, type BalanceCustomer, type MeterBalance, type PortalReading } from './balance.js';
import { compileMeter } from './evaluate.js';
import type { CustomerPortal } from './portal.js';
import { connect, read, readAll, usageFilter, usageOf, type MeterUsage, type Parts, type UsageOptions } from './usage.js';

/**
 * Options of the watches besides the customer and time range.
 * @example
 * { externalCustomerId: 'user_42', onError: (error) => console.warn('usage not updated', error) }
 */
export interface WatchOptions {
  /**
   * Hears a failed read (storage, or the portal while offline); the watch goes on and reads again
   * at the next change. @default the platform's `reportError` where there is one
   */
  onError?: (error: unknown) => void;
}

/**
 * Calls `listener` with the meter's usage now and whenever it changes: a track, flush or dead
 * letter, in this tab or another, reads only the local events waiting or sent (the mirrored part
 * is kept); a reconcile or clear reads both parts again. Bursts of changes coalesce into one read.
 * @returns the unsubscribe function
 * @example
 * const stop = watchMeterUsage(mirror, meter, { externalCustomerId: 'user_42', since: startOfMonth }, ({ value }) => render(value));
 */
export function watchMeterUsage(mirror: Mirror, meter: unknown, options: UsageOptions & WatchOptions, listener: (usage: MeterUsage) => void): () => void {
  const compiled = compileMeter(meter);
  const where = usageFilter(options);
  let parts: Parts | undefined;
  return watch(
    mirror,
    options,
    listener,
    ({ reason }) => reason === 'reconcile' || reason === 'clear',
    async (full) => {
      if (!full && parts) {
        const local = compiled.tally();
        const localIds = new Set<string>();
        await read(mirror, where, false, (event, id) => {
          localIds.add(id!);
          local.add(event);
        });
        // One that left was confirmed (or dead-lettered, or cleared): maybe by another tab whose notice
        // has not come yet, so the mirrored part is read again too.
        let left = false;
        for (const id of parts.localIds) left ||= !localIds.has(id);
        if (!left) parts = { server: parts.server, local, localIds };
        else full = true;
      } else full = true;
      if (full) parts = await readAll(mirror, compiled, where);
      return usageOf(compiled, parts!);
    },
  );
}

/**
 * Calls `listener` with the customer's balance now and whenever it changes: local changes re-read
 * the events not confirmed (the customer's confirmed history only when one of them left, and after a
 * clear()); a flush or reconcile asks the portal again (Polar's meter counts sent events 15 s
 * or more after their ingest: a reconcile now and then lets the balance catch up). While
 * the portal cannot be reached the last answer stays in use, so the balance still drops with each
 * tracked event. The rule is `countedByPortal`'s: under one portal answer the balance never rises
 * as events move on.
 * @returns the unsubscribe function
 * @example
 * const stop = watchMeterBalance(mirror, portal, meterId, { externalCustomerId: 'user_42' }, ({ balance }) => render(balance));
 */
export function watchMeterBalance(
  mirror: Mirror,
  portal: CustomerPortal,
  meterId: string | object,
  customer: BalanceCustomer & WatchOptions,
  listener: (balance: MeterBalance) => void,
): () => void {
  const { id, compiled, where } = balanceSetup(portal, meterId, customer);
  const customerKey = where.customerKey!;
  let reading: PortalReading | undefined;
  // The customer's confirmed history (long) is read again only when it may have changed: one of the
  // events not confirmed left them, or a clear(); else only the events not confirmed are read.
  let scan = true;
  let held: EventRecord[] = [];
  return watch(
    mirror,
    customer,
    listener,
    ({ reason }) => {
      if (reason === 'clear') scan = true;
      return reason === 'flush' || reason === 'reconcile' || reason === 'clear';
    },
    async (full) => {
      const { db, now } = await connect(mirror);
      const asking = full || !reading ? readPortal(portal, id, now) : undefined;
      asking?.catch(() => undefined); // handled below, maybe after it fails
      const rescan = scan;
      scan = false;
      let records = await readHeld(db, customerKey, now, rescan ? 'customer' : undefined).catch((error: unknown) => {
        scan ||= rescan;
        throw error;
      });
      if (!rescan) {
        const ids = new Set(records.map((r) => r.externalId));
        // One that left those not confirmed was confirmed (maybe in another tab not heard from yet), or is gone.
        if (held.some((r) => r.status !== 'confirmed' && !ids.has(r.externalId))) records = await readHeld(db, customerKey, now, 'customer');
        else records.push(...held.filter((r) => r.status === 'confirmed'));
      }
      held = records;
      if (asking) {
        try {
          reading = await asking;
        } catch (error) {
          if (!reading) throw error;
          (customer.onError ?? report)(error);
        }
      }
      return balanceOf(reading!, uncounted(compiled, records, reading!));
    },
  );
}

/**
 * The shared loop of the watches: one read at a time; changes during a read make one more read
 * (a full one if any of them asked for it); the listener hears only values that differ.
 */
function watch<T extends object>(
  mirror: Mirror,
  options: WatchOptions,
  listener: (value: T) => void,
  isFull: (change: { reason: string }) => boolean,
  read: (full: boolean) => Promise<T>,
): () => void {
  mirrorSeam(mirror, 'watch');
  if (typeof listener !== 'function') throw new TypeError('Expected the listener to be a function.');
  const onError = options.onError ?? report;
  let wanted: boolean | undefined = true;
  let running = false;
  let stopped = false;
  let last: T | undefined;
  const pump = async () => {
    running = true;
    while (wanted !== undefined && !stopped) {
      const full = wanted;
      wanted = undefined;
      try {
        const value = await read(full);
        if (!stopped && !sameValues(value, last)) {
          last = value;
          listener(value);
        }
      } catch (error) {
        try {
          mirrorSeam(mirror, 'watch');
        } catch {
          stopped = true; // the mirror closed: nothing more to watch
        }
        if (!stopped) onError(error);
      }
    }
    running = false;
  };
  const off = mirror.on('change', (change) => {
    wanted = wanted === true || isFull(change);
    if (!running) void pump();
  });
  void pump();
  return () => {
    stopped = true;
    off();
  };
}

function sameValues(a: object, b: object | undefined): boolean {
  return b !== undefined && Object.entries(a).every(([k, v]) => Object.is(v, (b as Record<string, unknown>)[k]));
}

function report(error: unknown): void {
  (globalThis as { reportError?: (error: unknown) => void }).reportError?.(error);
}
