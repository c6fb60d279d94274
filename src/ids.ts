/**
 * Time-sortable unique ids (UUID version 7 layout): 48 bits of epoch ms, then a counter that keeps
 * ids made in the same millisecond in creation order, then random bits so that ids made in other
 * tabs or workers at the same time never collide. Lowercase hex, so string order is creation order.
 */
let lastMs = -1;
let counter = 0;

function randomBytes(count: number): Uint8Array {
  const bytes = new Uint8Array(count);
  const crypto = (globalThis as { crypto?: { getRandomValues?: (b: Uint8Array) => Uint8Array } }).crypto;
  if (crypto?.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < count; i++) bytes[i] = Math.floor(Math.random() * 256);
  return bytes;
}

// One getRandomValues call per 512 ids instead of one per id: the call dominates the cost of an id
// (issue 6: track() runs on hot paths).
const POOL_BYTES = 4096;
let pool: Uint8Array | undefined;
let poolOffset = POOL_BYTES;

function pooledRandom(count: number): Uint8Array {
  if (pool === undefined || poolOffset + count > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    poolOffset = 0;
  }
  const out = pool.subarray(poolOffset, poolOffset + count);
  poolOffset += count;
  return out;
}

let HEX_BYTE: string[] | undefined;

function hexByte(b: number): string {
  HEX_BYTE ??= Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
  return HEX_BYTE[b]!;
}

function hex(value: number, width: number): string {
  return value.toString(16).padStart(width, '0');
}

/** A new UUIDv7 string; strictly increasing within this JS realm even when the clock steps back. */
export function uuidv7(now: number = Date.now()): string {
  let ms = Math.floor(now);
  if (ms <= lastMs) {
    // Same millisecond (or the clock went back): stay on the last ms and count up, so order holds.
    ms = lastMs;
    counter++;
    if (counter > 0xfff) {
      // 4096 ids in one ms: borrow the next millisecond.
      ms = ++lastMs;
      counter = 0;
    }
  } else {
    lastMs = ms;
    counter = 0;
  }
  const rand = pooledRandom(8);
  const timeHex = hex(ms, 12);
  const variant = hexByte(0x80 | (rand[0]! & 0x3f));
  let tail = '';
  for (let i = 1; i < 8; i++) tail += hexByte(rand[i]!);
  return `${timeHex.slice(0, 8)}-${timeHex.slice(8, 12)}-7${hex(counter, 3)}-${variant}${tail.slice(0, 2)}-${tail.slice(2, 14)}`;
}

/** A random id for a flush lease holder or a tab. */
export function randomId(): string {
  return Array.from(randomBytes(12), (b) => hex(b, 2)).join('');
}
