// The polar-event-buffer/mirror entry: the read path (reconcile, query, the server-object structs).
export { createMirror } from './mirror.js';
export { UserEventStruct, CustomerStruct, SystemEventStruct, isSystemEvent } from './structs.js';
export type { UserEvent, Customer, SystemEvent } from './structs.js';
export type {
  LocalEvent,
  Mirror,
  MirrorEvents,
  MirrorOptions,
  QueryFilter,
  ReconcileOptions,
  ReconcileReport,
  RetentionOptions,
} from './types.js';
