// The README's API reference is checked against the types: every function exported by the main
// entry, every method of EventBuffer and every key of EventBufferOptions has its own heading in
// docs/README.draft.md or README.md. The names come from the TypeScript checker, not a list here,
// so a new option or export without documentation fails this test.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { beforeAll, describe, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

let headings: string[];
let exportedFunctions: string[];
let optionKeys: string[];
let bufferMethods: string[];

beforeAll(() => {
  const docs = ['docs/README.draft.md', 'README.md'].map((f) => join(root, f)).filter((f) => existsSync(f));
  headings = docs.flatMap((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .filter((line) => /^#{2,6} /.test(line)),
  );

  const program = ts.createProgram([join(root, 'src/index.ts')], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    types: [],
    noEmit: true,
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const entry = checker.getSymbolAtLocation(program.getSourceFile(join(root, 'src/index.ts'))!)!;
  const exports = checker.getExportsOfModule(entry);
  const resolveAlias = (s: ts.Symbol) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);

  exportedFunctions = exports.filter((s) => resolveAlias(s).flags & ts.SymbolFlags.Function).map((s) => s.name);
  const members = (name: string) => {
    const symbol = resolveAlias(exports.find((s) => s.name === name)!);
    return checker.getDeclaredTypeOfSymbol(symbol).getProperties().map((p) => p.name);
  };
  optionKeys = members('EventBufferOptions');
  bufferMethods = members('EventBuffer');
}, 60_000);

/** A heading that names `name` as a word: `### createEventBuffer(options)`, `#### \`batchSize\``, `#### buffer.track(input)`. */
function hasHeading(name: string): boolean {
  const word = new RegExp(`(^|[^\\w$])${name.replace(/\$/g, '\\$')}([^\\w$]|$)`);
  return headings.some((h) => word.test(h.replace(/^#+ /, '')));
}

describe('README API reference', () => {
  test('the checker found the public surface (the test cannot pass on an empty list)', () => {
    expect(exportedFunctions).toEqual(expect.arrayContaining(['createEventBuffer', 'httpTransport']));
    expect(optionKeys).toEqual(expect.arrayContaining(['transport', 'batchSize', 'schemas']));
    expect(bufferMethods).toEqual(expect.arrayContaining(['track', 'flush', 'reconcile']));
  });

  test('every exported function has a heading', () => {
    expect(exportedFunctions.filter((name) => !hasHeading(name))).toEqual([]);
  });

  test('every key of EventBufferOptions has a heading', () => {
    expect(optionKeys.filter((name) => !hasHeading(name))).toEqual([]);
  });

  test('every method of the buffer has a heading', () => {
    expect(bufferMethods.filter((name) => !hasHeading(`buffer.${name}`) && !hasHeading(name))).toEqual([]);
  });
});
