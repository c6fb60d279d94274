// The public surface is documented, checked against the types (names come from the TypeScript
// checker, not from a list here, so a new export or option without docs fails):
// - the reference in docs/ has a heading for every
//   function of the main entry and of ./mirror, every key of EventBufferOptions and MirrorOptions,
//   every method of EventBuffer (`buffer.x`) and of Mirror (`mirror.x`);
// - TSDoc: every export has an @example, every EventBuffer and Mirror method has an @example, and
//   every optional option (EventBufferOptions, RetryOptions, HttpTransportOptions, MirrorOptions,
//   RetentionOptions) says its @default.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { beforeAll, describe, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const ENTRIES = ['src/index.ts', 'src/mirror/index.ts', 'src/meters/index.ts', 'src/react/index.ts'];
const OPTION_INTERFACES = ['EventBufferOptions', 'RetryOptions', 'HttpTransportOptions', 'MirrorOptions', 'RetentionOptions'];
/** Each documented object type and the name it goes by in the README's headings. */
const OBJECTS = [
  ['EventBuffer', 'buffer'],
  ['Mirror', 'mirror'],
] as const;

let checker: ts.TypeChecker;
let exports: { name: string; symbol: ts.Symbol }[];
let headings: string[];

function tags(symbol: ts.Symbol): string[] {
  return [...symbol.getJsDocTags(checker).map((t) => t.name), ...(symbol.declarations ?? []).flatMap((d) => ts.getJSDocTags(d).map((t) => t.tagName.text))];
}
const members = (name: string) => checker.getDeclaredTypeOfSymbol(exports.find((e) => e.name === name)!.symbol).getProperties();

beforeAll(() => {
  const program = ts.createProgram(
    ENTRIES.map((e) => join(root, e)),
    {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
      types: [],
      noEmit: true,
      skipLibCheck: true,
    },
  );
  checker = program.getTypeChecker();
  exports = ENTRIES.flatMap((file) => {
    const entry = checker.getSymbolAtLocation(program.getSourceFile(join(root, file))!)!;
    return checker.getExportsOfModule(entry).map((s) => ({
      name: s.name,
      symbol: s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s,
    }));
  });

  headings = readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .flatMap((f) => readFileSync(join(root, 'docs', f), 'utf8').split('\n'))
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
    expect(members('EventBuffer').map((p) => p.name)).toEqual(expect.arrayContaining(['track', 'flush', 'stats']));
    expect(members('Mirror').map((p) => p.name)).toEqual(expect.arrayContaining(['reconcile', 'query', 'on', 'close']));
    expect(members('MirrorOptions').map((p) => p.name)).toEqual(expect.arrayContaining(['retention', 'confirmGracePeriod']));
  });
});

describe('the reference in docs/', () => {
  test('every exported function has a heading', () => {
    const functions = exports.filter((e) => e.symbol.flags & ts.SymbolFlags.Function).map((e) => e.name);
    expect(functions).toEqual(expect.arrayContaining(['createEventBuffer', 'httpTransport', 'createMirror']));
    expect(functions.filter((name) => !hasHeading(name))).toEqual([]);
  });

  test('every key of EventBufferOptions and MirrorOptions has a heading', () => {
    const keys = [...members('EventBufferOptions'), ...members('MirrorOptions')].map((p) => p.name);
    expect(keys.filter((name) => !hasHeading(name))).toEqual([]);
  });

  test('every method of the buffer and of the mirror has a heading', () => {
    const methods = OBJECTS.flatMap(([type, prefix]) => members(type).map((p) => `${prefix}.${p.name}`));
    expect(methods.filter((name) => !hasHeading(name))).toEqual([]);
  });
});

describe('TSDoc', () => {
  test('every export of polar-event-buffer and of ./mirror has an @example', () => {
    expect(exports.filter((e) => !tags(e.symbol).includes('example')).map((e) => e.name)).toEqual([]);
  });

  test('every method of the buffer and of the mirror has an @example', () => {
    const methods = OBJECTS.flatMap(([type, prefix]) => members(type).map((p) => ({ name: `${prefix}.${p.name}`, p })));
    expect(methods.filter(({ p }) => !tags(p).includes('example')).map((m) => m.name)).toEqual([]);
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
