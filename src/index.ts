export { createEventBuffer } from './event-buffer.js';
export { httpTransport } from './transport/http.js';
export { flushOnSync } from './coordination/sync.js';
export type { SyncEventLike } from './coordination/sync.js';
export type { HttpTransportOptions } from './transport/http.js';
export type { Transport, EventCreateWire, IngestResult, ListResult } from './transport/transport.js';
export type { EventBufferOptions, RetryOptions, Clock } from './options.js';
export type { Durability } from './storage/schema.js';
export type {
  BufferedEvent,
  FlushReport,
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
export { EventCreateStruct, MetadataStruct, TrackInputStruct } from './validation/structs.js';
export type { EventCreate, Metadata, MetadataValue } from './validation/structs.js';
