import { describe, expect, it } from 'vitest';
import {
  ClosedError,
  EventValidationError,
  isPolarEventBufferError,
  NoIndexedDBError,
  PolarEventBufferError,
  QueueFullError,
  StorageError,
  TransportError,
} from '../src/errors.js';

describe('error family', () => {
  it('gives every error a stable code, its class name, and the base class', () => {
    const errors = [
      [new EventValidationError([{ path: ['name'], message: 'Expected a string' }]), 'event-validation', 'EventValidationError'],
      [new QueueFullError(10, 1, 10), 'queue-full', 'QueueFullError'],
      [new TransportError('x', { status: 503 }), 'transport', 'TransportError'],
      [new StorageError('track', 'quota'), 'storage', 'StorageError'],
      [new ClosedError('track'), 'closed', 'ClosedError'],
      [new NoIndexedDBError(), 'no-indexeddb', 'NoIndexedDBError'],
    ] as const;
    for (const [error, code, name] of errors) {
      expect(error).toBeInstanceOf(PolarEventBufferError);
      expect(error).toBeInstanceOf(Error);
      expect(error.code).toBe(code);
      expect(error.name).toBe(name);
      expect(isPolarEventBufferError(error)).toBe(true);
    }
  });

  it('keeps the original error as cause', () => {
    const cause = new TypeError('fetch failed');
    expect(new TransportError('POST failed', { status: 0, cause }).cause).toBe(cause);
    expect(new StorageError('track', 'failed', { cause }).cause).toBe(cause);
  });

  it('recognises an error from another realm by its name and code', () => {
    const foreign = { name: 'QueueFullError', code: 'queue-full', message: 'full' };
    expect(isPolarEventBufferError(foreign)).toBe(true);
    expect(isPolarEventBufferError({ name: 'QueueFullError' })).toBe(false);
    expect(isPolarEventBufferError({ name: 'TypeError', code: 'x' })).toBe(false);
    expect(isPolarEventBufferError(new Error('x'))).toBe(false);
    expect(isPolarEventBufferError(null)).toBe(false);
  });

  it('lists the failing paths in the validation message', () => {
    const error = new EventValidationError([
      { path: ['metadata', 'tokens'], message: 'Expected a number' },
      { path: ['name'], message: 'Expected a non-empty string' },
    ]);
    expect(error.message).toContain('metadata.tokens');
    expect(error.message).toContain('name');
    expect(error.failures).toHaveLength(2);
  });

  it('says what to do in a queue-full message', () => {
    const error = new QueueFullError(100, 3, 100);
    expect(error.message).toContain('maxQueueSize');
    expect(error.waiting).toBe(100);
  });
});
