// The public surface is documented, checked against the types (names come from the TypeScript
// checker, not from a list here, so a new export or option without docs fails):
// - the README's API reference (README.md) has a heading for every
//   function of the main entry, every key of EventBufferOptions and every method of EventBuffer;
// - TSDoc: every export has an @example, every EventBuffer method has an @example, and every
//   optional option (EventBufferOptions, RetryOptions, RetentionOptions, HttpTransportOptions)
//   says its @default.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { beforeAll, describe, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const OPTION_INTERFACES = ['EventBufferOptions', 'RetryOptions', 'RetentionOptions', 'HttpTransportOptions'];

let checker: ts.TypeChecker;
let exports: { name: string; symbol: ts.Symbol }[];
let headings: string[];

function tags(symbol: ts.Symbol): string[] {
  return [
    ...symbol.getJsDocTags(checker).map((t) => t.name),
    ...(symbol.declarations ?? []).flatMap((d) => ts.getJSDocTags(d).map((t) => t.tagName.text)),
  ];
}
const members = (name: string) => checker.getDeclaredTypeOfSymbol(exports.find((e) => e.name === name)!.symbol).getProperties();

beforeAll(() => {
  const program = ts.createProgram([join(root, 'src/index.ts')], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    types: [],
    noEmit: true,
    skipLibCheck: true,
  });
  checker = program.getTypeChecker();
  const entry = checker.getSymbolAtLocation(program.getSourceFile(join(root, 'src/index.ts'))!)!;
  exports = checker.getExportsOfModule(entry).map((s) => ({
    name: s.name,
    symbol: s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s,
  }));

  headings = ['README.md']
    .map((f) => join(root, f))
    .filter((f) => existsSync(f))
    .flatMap((f) => readFileSync(f, 'utf8').split('\n'))
    .filter((line) => /^#{2,6} /.test(line))
    .map((line) => line.replace(/^#+ /, ''));
}, 60_000);

/** A heading that names `name` as a word: `### createEventBuffer(options)`, `#### \`batchSize\``, `#### buffer.track(input)`. */
function hasHeading(name: string): boolean {
  const word = new RegExp(`(^|[^\\w$])${name.replace(/[.$]/g, '\\$&')}([^\\w$]|$)`);
  return headings.some((h) => word.test(h));
}

describe('the checker sees the public surface', () => {
  test('it lists the exports, the options and the buffer methods (no test below passes on an empty list)', () => {
    expect(exports.length).toBeGreaterThan(30);
    expect(members('EventBufferOptions').map((p) => p.name)).toEqual(expect.arrayContaining(['transport', 'batchSize', 'schemas']));
    expect(members('EventBuffer').map((p) => p.name)).toEqual(expect.arrayContaining(['track', 'flush', 'reconcile']));
  });
});

describe('README API reference', () => {
  test('every exported function has a heading', () => {
    const functions = exports.filter((e) => e.symbol.flags & ts.SymbolFlags.Function).map((e) => e.name);
    expect(functions).toEqual(expect.arrayContaining(['createEventBuffer', 'httpTransport']));
    expect(functions.filter((name) => !hasHeading(name))).toEqual([]);
  });

  test('every key of EventBufferOptions has a heading', () => {
    expect(members('EventBufferOptions').map((p) => p.name).filter((name) => !hasHeading(name))).toEqual([]);
  });

  test('every method of the buffer has a heading', () => {
    expect(members('EventBuffer').map((p) => p.name).filter((name) => !hasHeading(`buffer.${name}`))).toEqual([]);
  });
});

describe('TSDoc', () => {
  test('every export of polar-event-buffer has an @example', () => {
    expect(exports.filter((e) => !tags(e.symbol).includes('example')).map((e) => e.name)).toEqual([]);
  });

  test('every method of the buffer has an @example', () => {
    expect(members('EventBuffer').filter((p) => !tags(p).includes('example')).map((p) => p.name)).toEqual([]);
  });

  test('every optional option says its @default', () => {
    const options = OPTION_INTERFACES.flatMap((name) =>
      members(name)
        .filter((p) => p.flags & ts.SymbolFlags.Optional)
        .map((p) => ({ name: `${name}.${p.name}`, p })),
    );
    expect(options.length).toBeGreaterThan(20);
    expect(options.filter(({ p }) => !tags(p).includes('default')).map((o) => o.name)).toEqual([]);
  });
});
