import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/** The import graph of src/ (type-only imports included: they are edges for cycles too). */
const root = resolve(import.meta.dirname, '..');
const files = (readdirSync(join(root, 'src'), { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => join(root, 'src', f));
const source = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]));
const edges = new Map(
  files.map((f) => [f, [...source.get(f)!.matchAll(/(?:from|import)\s+'(\.[^']+)'/g)].map((m) => resolve(dirname(f), m[1]!.replace(/\.js$/, '.ts')))]),
);
const name = (f: string) => relative(join(root, 'src'), f);

function closure(start: string): Set<string> {
  const seen = new Set<string>();
  const visit = (f: string) => {
    if (seen.has(f)) return;
    seen.add(f);
    for (const g of edges.get(f) ?? []) visit(g);
  };
  visit(start);
  return seen;
}

describe('architecture', () => {
  it('has no import cycle in src/', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const walk = (f: string, path: string[]) => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') return void cycles.push([...path.slice(path.indexOf(f)), f].map(name).join(' > '));
      state.set(f, 'open');
      for (const g of edges.get(f) ?? []) walk(g, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of files) walk(f, []);
    expect(cycles).toEqual([]);
  });

  it('keeps the write path (the main entry) free of the read path, the meters, react and the mock server', () => {
    const reached = [...closure(join(root, 'src/index.ts'))].map(name);
    expect(reached.filter((f) => /^(mirror|meters|react|mock-server)\//.test(f) || f === 'storage/mirror-store.ts')).toEqual([]);
  });

  it('keeps the relay out of every browser entry', () => {
    for (const entry of ['index.ts', 'mirror/index.ts', 'meters/index.ts', 'react/index.ts']) {
      const reached = [...closure(join(root, 'src', entry))].map(name);
      expect({ entry, relay: reached.filter((f) => f.startsWith('relay/')) }).toEqual({ entry, relay: [] });
    }
  });

  it('lets the relay share the wire structs with the write path and nothing else, and import nothing of Node', () => {
    const reached = [...closure(join(root, 'src/relay/index.ts'))].map(name);
    expect(reached.filter((f) => !f.startsWith('relay/'))).toEqual(['validation/structs.ts']);
    const runtime = reached.flatMap((f) => [...source.get(join(root, 'src', f))!.matchAll(/^import\s+(?!type\b)[^;]*from\s+'([^.][^']*)'/gm)].map((m) => m[1]));
    expect([...new Set(runtime)]).toEqual(['superstruct']);
  });

  it('imports idb at run time from storage/db.ts only (the one module that owns IndexedDB)', () => {
    const importers = files.filter((f) => /^import\s+(?!type\b)[^;]*from\s+'idb'/m.test(source.get(f)!)).map(name);
    expect(importers).toEqual(['storage/db.ts']);
  });
});
