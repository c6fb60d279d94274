/**
 * `validateTrackInput()`: the single gate in front of `track()`. It never throws anything but
 * `EventValidationError`, whatever it is given, and returns a fresh plain copy of the input.
 */
import { validate, type StructError } from 'superstruct';
import type { Struct } from 'superstruct';
import { EventValidationError } from '../errors.js';
import type { ValidationFailure } from '../errors.js';
import { createTrackInputStruct, isPlainObject, TrackInputStruct } from './structs.js';
import type { TrackInput } from './structs.js';
import type { TrackDefaults } from '../options.js';

export interface ValidateTrackInputOptions {
  /** `{ [eventName]: Struct }`: the metadata of that event must also pass the struct. */
  schemas?: Readonly<Record<string, Struct<any, any>>> | undefined;
  /** Customer, member and organization references for inputs that have none of their own. */
  defaults?: TrackDefaults | undefined;
  /** The current time in ms (default `Date.now()`); pass the server-corrected clock when known. */
  now?: number | undefined;
  /** The input is already a fresh copy from readInput(). */
  copied?: boolean | undefined;
}

// externalId too: a UUID parentId names it, and must still match it once lower case.
const UUID_KEYS = ['customerId', 'memberId', 'organizationId', 'parentId', 'externalId'] as const;
const UUID_RE = /^[\da-f]{8}-[\da-f]{4}-[\da-f]{4}-[\da-f]{4}-[\da-f]{12}$/i;

/** A UUID in lower case (Polar's form); any other string as it is. */
export const normalizeId = (id: string): string => (UUID_RE.test(id) ? id.toLowerCase() : id);

/** How far ahead of now a timestamp may be: the flush clamps it to the server's clock. */
const FUTURE_ALLOWANCE_MS = 5 * 60_000;
/** 0001-01-01T00:00:00Z: the server (Python's datetime) has no year 0 or before. */
const EARLIEST_MS = -62_135_596_800_000;

/** Superstruct failures as `{ path: string[], message }`, every one, with `prefix` before each path. */
export function validationFailures(error: StructError, prefix: readonly string[] = []): ValidationFailure[] {
  return error.failures().map((f) => ({
    path: [...prefix, ...f.path.map(String)],
    // Superstruct's object() says `never` for an unknown key.
    message: f.type === 'never' ? `Unknown key ${JSON.stringify(String(f.key))}` : f.message,
  }));
}

/** A property that could not be read (a getter or a Proxy trap threw). */
class ReadFailure {
  constructor(
    readonly path: string[],
    readonly cause: unknown,
  ) {}
}

/**
 * Stands in for a value no struct here accepts (an array, a Map, a class instance, a function, an
 * object nested deeper than anything valid), so that a message can describe it without running
 * its code: an empty array, which every struct refuses, that prints as `what`.
 */
const odd = (what: string): unknown => Object.defineProperty([], 'toString', { value: () => what });

/**
 * Reads the input exactly once into fresh plain objects and Dates, so that validation and the
 * returned copy see the same values and getters or Proxies run only here.
 */
function snapshot(value: unknown, path: string[]): unknown {
  if (typeof value === 'function') return odd('a function');
  if (typeof value !== 'object' || value === null) return value;
  try {
    if (Object.prototype.toString.call(value) === '[object Date]') return new Date(Date.prototype.getTime.call(value));
    if (Array.isArray(value)) return odd('an array');
    // input → metadata → _llm → cost: nothing valid is deeper.
    if (path.length > 3 || !isPlainObject(value)) return odd(path.length > 3 ? 'an object nested too deep' : 'an object that is not plain');
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      let item: unknown;
      try {
        item = value[key];
      } catch (error) {
        throw new ReadFailure([...path, key], error);
      }
      const copy = snapshot(item, [...path, key]);
      // An own "__proto__" key stays a data property instead of setting the prototype; assignment
      // is several times cheaper than defineProperty for every other key.
      if (key === '__proto__') Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true, configurable: true });
      else out[key] = copy;
    }
    // Superstruct prints a refused value with `${value}`, which own toString/valueOf keys break.
    if (Object.hasOwn(out, 'toString') || Object.hasOwn(out, 'valueOf')) Object.defineProperty(out, Symbol.toPrimitive, { value: () => 'an object' });
    return out;
  } catch (error) {
    throw error instanceof ReadFailure ? error : new ReadFailure(path, error);
  }
}

const structs = new WeakMap<Struct<any, any>, Struct<TrackInput, null>>();

function structFor(schemas: ValidateTrackInputOptions['schemas'], name: unknown): Struct<TrackInput, null> {
  const schema = schemas && typeof name === 'string' && Object.hasOwn(schemas, name) ? schemas[name] : undefined;
  if (!schema) return TrackInputStruct;
  let struct = structs.get(schema);
  if (!struct) structs.set(schema, (struct = createTrackInputStruct(schema)));
  return struct;
}

/**
 * Fills what the input leaves out from `defaults`: the customer when it has no customer
 * reference, the member of that customer's kind when it has no member reference, the organization.
 */
function applyDefaults(input: Record<string, unknown>, defaults: TrackDefaults | undefined): void {
  if (!defaults) return;
  const fill = (key: keyof TrackDefaults) => {
    if (input[key] === undefined && defaults[key] !== undefined) input[key] = defaults[key];
  };
  if (input['customerId'] === undefined && input['externalCustomerId'] === undefined) {
    fill('externalCustomerId');
    fill('customerId');
  }
  if (input['memberId'] === undefined && input['externalMemberId'] === undefined) {
    if (input['externalCustomerId'] !== undefined) fill('externalMemberId');
    if (input['customerId'] !== undefined) fill('memberId');
  }
  fill('organizationId');
}

function timestampFailure(timestamp: unknown, now: number): ValidationFailure | undefined {
  if (!(timestamp instanceof Date)) return undefined;
  const ms = timestamp.getTime();
  if (ms < EARLIEST_MS) return { path: ['timestamp'], message: `Expected the year 1 or later, but received ${timestamp.toISOString()}` };
  if (ms > now + FUTURE_ALLOWANCE_MS) {
    return { path: ['timestamp'], message: `Expected at most 5 minutes after now (${new Date(now).toISOString()}), but received ${timestamp.toISOString()}` };
  }
  return undefined;
}

const message = (error: unknown): string => {
  try {
    return error instanceof Error ? error.message : String(error);
  } catch {
    return 'unprintable';
  }
};

/**
 * Validates the input of `track()`: applies `defaults`, checks the struct (and
 * `schemas[input.name]` on the metadata, failures under `metadata`), refuses timestamps too far in
 * the future. Throws `EventValidationError` with every failure; never throws anything else.
 * Returns a fresh plain copy that later mutation of the caller's objects cannot change.
 */
export function validateTrackInput(input: unknown, options: ValidateTrackInputOptions = {}): TrackInput {
  try {
    const copy = options.copied ? input : snapshot(input, []);
    if (!isPlainObject(copy)) {
      throw new EventValidationError([{ path: [], message: `Expected a plain object, but received ${typeof copy === 'object' ? String(copy) : typeof copy}` }]);
    }
    applyDefaults(copy, options.defaults);
    const struct = structFor(options.schemas, copy['name']);
    // An event with a schema is checked against it even without metadata (as `{}`).
    if (struct !== TrackInputStruct) copy['metadata'] ??= {};

    // Only a user schema coerces (e.g. `defaulted`); coercion would copy every object once more.
    const [error, value] = validate(copy, struct, { coerce: struct !== TrackInputStruct });
    const failures = error ? validationFailures(error) : [];
    const now = typeof options.now === 'number' && Number.isFinite(options.now) ? options.now : Date.now();
    const late = timestampFailure(copy['timestamp'], now);
    if (late) failures.push(late);
    if (failures.length > 0 || !value) throw new EventValidationError(failures, error ? { cause: error } : undefined);

    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) if (value[key as keyof TrackInput] !== undefined) out[key] = value[key as keyof TrackInput];
    // Polar answers UUIDs lower case: stored as it does, a server copy matches and a customer is one key.
    for (const key of UUID_KEYS) if (typeof out[key] === 'string') out[key] = normalizeId(out[key]);
    return out as unknown as TrackInput;
  } catch (error) {
    throw unreadable(error);
  }
}

/**
 * Reads a track() input once into fresh plain data, at the call, so that what the caller changes
 * afterwards cannot change the event; validateTrackInput(copy, { copied: true }) checks it later.
 */
export function readInput(input: unknown): unknown {
  try {
    return snapshot(input, []);
  } catch (error) {
    throw unreadable(error);
  }
}

function unreadable(error: unknown): EventValidationError {
  if (error instanceof EventValidationError) return error;
  const read = error instanceof ReadFailure;
  return new EventValidationError([{ path: read ? error.path : [], message: `Could not be read (${message(read ? error.cause : error)}); pass plain data` }], {
    cause: read ? error.cause : error,
  });
}
