// TSDoc on the public surface: every export of the main entry has a doc comment with an
// @example, and every optional option (of the options interfaces) says its @default.
// The symbols come from the TypeScript checker, so a new export without docs fails here.
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { beforeAll, describe, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
/** Interfaces whose optional properties are options with a default. */
const OPTION_INTERFACES = ['EventBufferOptions', 'RetryOptions', 'RetentionOptions', 'HttpTransportOptions'];

let missingExample: string[];
let missingDefault: string[];
let methodsMissingExample: string[];
let exportCount = 0;
let optionCount = 0;

function tags(symbol: ts.Symbol, checker: ts.TypeChecker): string[] {
  return [
    ...symbol.getJsDocTags(checker).map((t) => t.name),
    // Merged declarations (a const and a type of one name) carry their docs on any declaration.
    ...(symbol.declarations ?? []).flatMap((d) => ts.getJSDocTags(d).map((t) => t.tagName.text)),
  ];
}

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
  const checker = program.getTypeChecker();
  const entry = checker.getSymbolAtLocation(program.getSourceFile(join(root, 'src/index.ts'))!)!;
  const resolveAlias = (s: ts.Symbol) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  const exports = checker.getExportsOfModule(entry).map((s) => ({ name: s.name, symbol: resolveAlias(s) }));
  exportCount = exports.length;
  missingExample = exports.filter(({ symbol }) => !tags(symbol, checker).includes('example')).map((e) => e.name);

  const bufferType = checker.getDeclaredTypeOfSymbol(exports.find((e) => e.name === 'EventBuffer')!.symbol);
  methodsMissingExample = bufferType
    .getProperties()
    .filter((p) => !tags(p, checker).includes('example'))
    .map((p) => `EventBuffer.${p.name}`);

  missingDefault = [];
  for (const { name, symbol } of exports.concat(
    // RetentionOptions is reachable through EventBufferOptions.retention, not exported by name.
    checker
      .getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(join(root, 'src/options.ts'))!)!)
      .filter((s) => s.name === 'RetentionOptions')
      .map((s) => ({ name: s.name, symbol: s })),
  )) {
    if (!OPTION_INTERFACES.includes(name)) continue;
    for (const property of checker.getDeclaredTypeOfSymbol(symbol).getProperties()) {
      if (!(property.flags & ts.SymbolFlags.Optional)) continue;
      optionCount++;
      if (!tags(property, checker).includes('default')) missingDefault.push(`${name}.${property.name}`);
    }
  }
}, 60_000);

describe('TSDoc', () => {
  test('the checker found the public surface', () => {
    expect(exportCount).toBeGreaterThan(30);
    expect(optionCount).toBeGreaterThan(20);
  });

  test('every export of polar-event-buffer has an @example', () => {
    expect(missingExample).toEqual([]);
  });

  test('every method of the buffer has an @example', () => {
    expect(methodsMissingExample).toEqual([]);
  });

  test('every optional option says its @default', () => {
    expect(missingDefault).toEqual([]);
  });
});
