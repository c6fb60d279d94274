/**
 * `validateTrackInput()`: the single gate in front of `track()`. It never throws anything but
 * `EventValidationError`, whatever it is given, and returns a fresh plain copy of the input.
 */
import { validate, type StructError } from 'superstruct';
import type { Struct } from 'superstruct';
import { EventValidationError } from '../errors.js';
import type { ValidationFailure } from '../errors.js';
import { createTrackInputStruct, isPlainObject, isValidDate, setOwn } from './structs.js';
import type { Metadata, TrackInput } from './structs.js';

export interface TrackDefaults {
  externalCustomerId?: string | undefined;
  customerId?: string | undefined;
  organizationId?: string | undefined;
}

export interface ValidateTrackInputOptions {
  /** `{ [eventName]: Struct }`: the metadata of that event must also pass the struct. */
  schemas?: Readonly<Record<string, Struct<any, any>>> | undefined;
  /** Applied when the input has neither customer reference (organizationId: when it has none). */
  defaults?: TrackDefaults | undefined;
  /** The current time in ms (default `Date.now()`); pass the server-corrected clock when known. */
  now?: number | undefined;
  /** How far in the future a timestamp may be, in ms (default 5 minutes). */
  futureAllowanceMs?: number | undefined;
}

export const DEFAULT_FUTURE_ALLOWANCE_MS = 5 * 60 * 1000;

/** Superstruct failures as `{ path: string[], message }`, every one, with `prefix` before each path. */
export function validationFailures(error: StructError, prefix: readonly string[] = []): ValidationFailure[] {
  const out: ValidationFailure[] = [];
  const seen = new Set<string>();
  for (const failure of error.failures()) {
    const path = [...prefix, ...failure.path.map((part: unknown) => safeString(part))];
    const message = typeof failure.message === 'string' ? failure.message : safeString(failure.message);
    const id = JSON.stringify([path, message]);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ path, message });
  }
  return out;
}

function safeString(value: unknown): string {
  try {
    if (typeof value === 'string') return value;
    if (typeof value === 'symbol') return value.toString();
    return String(value);
  } catch {
    return '(unprintable)';
  }
}

function errorMessage(error: unknown): string {
  try {
    if (error instanceof Error) return error.message;
    return safeString(error);
  } catch {
    return '(unprintable error)';
  }
}

/** A property that could not be read (a getter or a Proxy trap threw). */
class ReadFailure {
  constructor(
    readonly path: string[],
    readonly cause: unknown,
  ) {}
}

/** Nothing valid is nested deeper than input → metadata → _llm → cost. */
const MAX_COPY_DEPTH = 3;

/**
 * Reads the input exactly once into fresh plain objects (and fresh Dates), so that validation and
 * the returned copy see the same values and getters/Proxies run only here. Values that can never be
 * valid (arrays, class instances, objects nested too deep, cycles) are kept by reference: the
 * structs refuse them and they are never returned.
 */
function snapshot(value: unknown, path: string[]): unknown {
  if (typeof value !== 'object' || value === null) return value;
  try {
    if (Object.prototype.toString.call(value) === '[object Date]') {
      try {
        return new Date(Date.prototype.getTime.call(value));
      } catch {
        return value; // something dressed up as a Date: refused by the struct
      }
    }
    if (path.length > MAX_COPY_DEPTH || !isPlainObject(value)) return value;
    const keys = Object.keys(value);
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      let item: unknown;
      try {
        item = value[key];
      } catch (error) {
        throw new ReadFailure([...path, key], error);
      }
      setOwn(out, key, snapshot(item, [...path, key]));
    }
    return out;
  } catch (error) {
    if (error instanceof ReadFailure) throw error;
    throw new ReadFailure(path, error);
  }
}

function cloneValue(value: unknown): unknown {
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    setOwn(out, key, cloneValue(value[key]));
  }
  return out;
}

const structCache = new WeakMap<Struct<any, any>, Struct<TrackInput, null>>();

function structFor(schema: Struct<any, any> | undefined): Struct<TrackInput, null> {
  if (schema === undefined) return createTrackInputStruct();
  let struct = structCache.get(schema);
  if (struct === undefined) {
    struct = createTrackInputStruct(schema);
    structCache.set(schema, struct);
  }
  return struct;
}

function lookupSchema(
  schemas: Readonly<Record<string, Struct<any, any>>> | undefined,
  name: unknown,
): Struct<any, any> | undefined {
  if (schemas === undefined || schemas === null || typeof name !== 'string') return undefined;
  if (!Object.prototype.hasOwnProperty.call(schemas, name)) return undefined;
  const schema = schemas[name];
  return schema === undefined || schema === null ? undefined : schema;
}

function applyDefaults(input: Record<string, unknown>, defaults: TrackDefaults | undefined): void {
  if (defaults === undefined || defaults === null) return;
  if (input['customerId'] === undefined && input['externalCustomerId'] === undefined) {
    if (defaults.externalCustomerId !== undefined) input['externalCustomerId'] = defaults.externalCustomerId;
    if (defaults.customerId !== undefined) input['customerId'] = defaults.customerId;
  }
  if (input['organizationId'] === undefined && defaults.organizationId !== undefined) {
    input['organizationId'] = defaults.organizationId;
  }
}

/** 0001-01-01T00:00:00Z: the server (Python's datetime) has no year 0 or before. */
const EARLIEST_TIMESTAMP_MS = -62_135_596_800_000;

function futureFailure(timestamp: Date, now: number, allowanceMs: number): ValidationFailure | undefined {
  if (timestamp.getTime() < EARLIEST_TIMESTAMP_MS) {
    return {
      path: ['timestamp'],
      message: `Expected a timestamp from the year 1 on, but received ${timestamp.toISOString()}: the server refuses years before 1`,
    };
  }
  if (timestamp.getTime() <= now + allowanceMs) return undefined;
  const minutes = allowanceMs / 60_000;
  const allowance = Number.isInteger(minutes) ? `${minutes} minute${minutes === 1 ? '' : 's'}` : `${allowanceMs} ms`;
  return {
    path: ['timestamp'],
    message:
      `Expected a timestamp at most ${allowance} after now (${new Date(now).toISOString()}), but received ` +
      `${timestamp.toISOString()}: the server refuses future timestamps`,
  };
}

/** Builds the returned copy: fixed key order, no undefined keys, metadata deep-copied. */
function toTrackInput(value: TrackInput): TrackInput {
  const out: TrackInput = { name: value.name };
  if (value.externalCustomerId !== undefined) out.externalCustomerId = value.externalCustomerId;
  if (value.customerId !== undefined) out.customerId = value.customerId;
  if (value.organizationId !== undefined) out.organizationId = value.organizationId;
  if (value.metadata !== undefined) out.metadata = cloneValue(value.metadata) as Metadata; // a plain object: validated above
  if (value.timestamp !== undefined) out.timestamp = new Date(value.timestamp.getTime());
  if (value.externalId !== undefined) out.externalId = value.externalId;
  if (value.parentId !== undefined) out.parentId = value.parentId;
  return out;
}

/**
 * Validates the input of `track()`: applies `defaults`, checks the struct (and
 * `schemas[input.name]` on the metadata, failures under `metadata`), refuses timestamps too far in
 * the future. Throws `EventValidationError` with every failure; never throws anything else.
 * Returns a fresh plain copy that later mutation of the caller's objects cannot change.
 */
export function validateTrackInput(input: unknown, options: ValidateTrackInputOptions = {}): TrackInput {
  try {
    const copy = snapshot(input, []);
    if (isPlainObject(copy)) applyDefaults(copy, options?.defaults);
    const name = isPlainObject(copy) ? copy['name'] : undefined;
    const schema = lookupSchema(options?.schemas, name);
    // An event with a schema is checked against it even without metadata (as `{}`).
    if (schema !== undefined && isPlainObject(copy) && copy['metadata'] === undefined) copy['metadata'] = {};
    const struct = structFor(schema);

    const failures: ValidationFailure[] = [];
    const [error, value] = validate(copy, struct, { coerce: true });
    if (error) failures.push(...validationFailures(error));

    const timestamp = isPlainObject(copy) ? copy['timestamp'] : undefined;
    if (isValidDate(timestamp)) {
      const now = typeof options?.now === 'number' && Number.isFinite(options.now) ? options.now : Date.now();
      const allowance =
        typeof options?.futureAllowanceMs === 'number' && options.futureAllowanceMs >= 0
          ? options.futureAllowanceMs
          : DEFAULT_FUTURE_ALLOWANCE_MS;
      const future = futureFailure(timestamp, now, allowance);
      if (future) failures.push(future);
    }

    if (failures.length > 0 || value === undefined) {
      if (failures.length === 0) failures.push({ path: [], message: 'The input did not pass validation' });
      throw new EventValidationError(failures, error ? { cause: error } : undefined);
    }
    return toTrackInput(value);
  } catch (error) {
    if (error instanceof EventValidationError) throw error;
    if (error instanceof ReadFailure) {
      throw new EventValidationError(
        [{ path: error.path, message: `Could not be read (a getter or Proxy threw: ${errorMessage(error.cause)}); pass plain data` }],
        { cause: error.cause },
      );
    }
    throw new EventValidationError(
      [{ path: [], message: `The input could not be validated (${errorMessage(error)}); pass plain data` }],
      { cause: error },
    );
  }
}
