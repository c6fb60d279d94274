/**
 * The one way to check a public argument: every wrong one throws a TypeError that names it,
 * "Expected `name` to be ..., got ..." (p-retry's option checks do the same).
 */

const shown = (v: unknown): string =>
  typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' && v ? (Array.isArray(v) ? 'an array' : 'an object') : String(v);

export const argError = (name: string, what: string, ...got: unknown[]): TypeError =>
  new TypeError(`Expected \`${name}\` to be ${what}${got.length ? `, got ${shown(got[0])}` : ''}`);

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `value` if it is a plain object (undefined gives {}), else a TypeError naming it. */
export function objectArg(
  name: string,
  value: unknown,
  known?: readonly string[],
  prefix = `${name}.`,
  moved: Record<string, string> = {},
): Record<string, unknown> {
  if (value === undefined) return {};
  if (!isObject(value)) throw argError(name, 'an object', value);
  if (known) {
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) {
        throw new TypeError(`Unknown option \`${prefix}${key}\`: ${moved[key] ? `use ${moved[key]}` : `expected ${known.join(', ')}`}`);
      }
    }
  }
  return value;
}

/** [min, max, default, integer?]; a max of Infinity also allows Infinity itself. */
export type Range = readonly [number, number, number, 1?];

export function numberArg(name: string, value: unknown, [min, max, fallback, int]: Range): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= min && value <= max) || (int && value !== Infinity && !Number.isInteger(value))) {
    throw argError(name, `${int ? 'an integer' : 'a number'} ${max < 2 ** 53 ? `from ${min} to ${max}` : `≥ ${min}`}`, value);
  }
  return value;
}

export function stringArg(name: string, value: unknown): string | undefined {
  if (value !== undefined && (typeof value !== 'string' || !value)) throw argError(name, 'a non-empty string', value);
  return value as string | undefined;
}

export function dateArg(name: string, value: unknown): Date | undefined {
  if (value !== undefined && !(value instanceof Date && Number.isFinite(value.getTime()))) throw argError(name, 'a valid Date', value);
  return value as Date | undefined;
}

/** At most one of the pair `a`/`b` of `object` is given. */
export function oneOf(object: Record<string, unknown>, a: string, b: string, prefix = ''): void {
  if (object[a] !== undefined && object[b] !== undefined) throw new TypeError(`Expected one of \`${prefix}${a}\` and \`${prefix}${b}\`, not both`);
}

/** `value` is one of `allowed`. */
export function enumArg<T>(name: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) throw argError(name, `one of ${allowed.join(', ')}`, value);
  return value as T;
}
