// The polar-event-buffer/meters entry: Polar meters computed on the device (issue 14).
export { compileMeter } from './evaluate.js';
export type { AggregationFunction, CompiledMeter, MeterEvent, Tally } from './evaluate.js';
export { MeterDefinitionError } from '../errors.js';
