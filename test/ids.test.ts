import { describe, expect, it } from 'vitest';
import { uuidv7, randomId } from '../src/ids.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('uuidv7', () => {
  it('makes version-7 UUIDs with the RFC 9562 variant', () => {
    for (let i = 0; i < 50; i++) expect(uuidv7()).toMatch(UUID_V7);
  });

  it('makes 10,000 unique ids in creation order within one millisecond', () => {
    const now = Date.now();
    const ids = Array.from({ length: 10_000 }, () => uuidv7(now));
    expect(new Set(ids).size).toBe(10_000);
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true);
  });

  it('keeps increasing when the clock steps back', () => {
    const now = Date.now() + 60_000;
    const before = uuidv7(now);
    const after = uuidv7(now - 30_000);
    const later = uuidv7(now - 29_000);
    expect(after > before).toBe(true);
    expect(later > after).toBe(true);
  });

  it('puts the time in the first 48 bits', () => {
    const now = Date.now() + 120_000;
    const id = uuidv7(now);
    expect(parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(now);
  });
});

describe('randomId', () => {
  it('makes distinct ids', () => {
    expect(new Set(Array.from({ length: 100 }, () => randomId())).size).toBe(100);
  });
});
