// The polar-event-buffer/meters entry: Polar meters computed on the device (issue 14).
export { compileMeter } from './evaluate.js';
export { meterUsage } from './usage.js';
export { meterBalance } from './balance.js';
export { customerPortalTransport } from './portal.js';
export { watchMeterUsage, watchMeterBalance } from './live.js';
export { MeterDefinitionError } from '../errors.js';
export type { AggregationFunction, CompiledMeter, MeterEvent, Tally } from './evaluate.js';
export type { MeterUsage, UsageOptions } from './usage.js';
export type { BalanceCustomer, MeterBalance } from './balance.js';
export type { CustomerMeter, CustomerPortal, CustomerPortalOptions } from './portal.js';
export type { WatchOptions } from './live.js';
