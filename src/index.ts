export { createEventBuffer } from './event-buffer.js';
export { httpTransport } from './transport/http.js';
export { flushOnSync } from './coordination/sync.js';
export type { SyncEventLike } from './coordination/sync.js';
export type { HttpTransportOptions } from './transport/http.js';
export type { Transport, EventCreateWire, IngestResult, ListResult } from './transport/transport.js';
export type { EventBufferOptions, RetryOptions, RetentionOptions, Clock } from './options.js';
export type {
  BufferedEvent,
  LocalEvent,
  FlushReport,
  ReconcileReport,
  ReconcileOptions,
  QueryFilter,
  BufferStats,
  BufferEvents,
  ChangeEvent,
  DeadLetterEvent,
  EventBuffer,
  EventStatus,
  TrackInputBase,
  TrackInputFor,
} from './types.js';
export {
  PolarEventBufferError,
  EventValidationError,
  ServerEventValidationError,
  QueueFullError,
  TransportError,
  StorageError,
  ClosedError,
  NoIndexedDBError,
  isPolarEventBufferError,
} from './errors.js';
export type { ErrorCode, ValidationFailure, ValidationDetail } from './errors.js';
export {
  EventCreateStruct,
  UserEventStruct,
  CustomerStruct,
  MetadataStruct,
  TrackInputStruct,
  SystemEventStruct,
  isSystemEvent,
} from './validation/structs.js';
export type { UserEvent, Customer, Metadata, MetadataValue, SystemEvent } from './validation/structs.js';
