// Keeps the layers of DESIGN.md and README "Layout" true: every import in src/ points down
//   cli -> commands -> {git, store, merge, diff, remote, probe} -> {model} -> {format, kernels} -> {errors}
// A folder may import its own files and any folder on a lower level, with two narrowings: cli/ reaches
// the rest only through commands/ (and errors/, to turn errors into exit codes), and format/ is pure (no
// node: built-ins, so it can be fuzzed alone). Between folders of the same level only the edges listed
// in SIBLING_EDGES (acyclic, checked below). Only cli/ imports yargs, only cli/main.ts calls
// process.exit, only kernels/ loads the native .node file.
//
// Imports are read with the TypeScript parser, so every form counts: import/export ... from, bare
// imports, `import type`, dynamic import() and import('...') types, require(). A dynamic import whose
// specifier is not a string literal cannot be checked and is itself a violation.

import { readdirSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Top to bottom. A folder may depend on any folder of a later level. */
const LEVELS: readonly (readonly string[])[] = [
  ['cli'],
  ['commands'],
  ['git', 'store', 'merge', 'diff', 'remote', 'probe'],
  ['model'],
  ['format', 'kernels'],
  ['errors'],
];

/**
 * The dependencies allowed between folders of one level. git (protocol adapters) and store (the object
 * store) are the bases of their level and depend on no sibling; the domain folders build on them:
 * merge writes merged tensors into the store, remote moves store objects through git, probe reads
 * checkpoints from the store and keeps its cache in git notes. diff works on tensor bytes it is given.
 * format and kernels are independent of each other. Anything else needs a deliberate entry here.
 */
const SIBLING_EDGES: Readonly<Record<string, readonly string[]>> = {
  merge: ['store', 'diff'], // merge reads tensors in blocks with diff's ByteBlocks
  remote: ['git', 'store'],
  probe: ['git', 'store'],
};

/** Folders that may import only these others (besides their own files and the packages they need). */
const ONLY: Readonly<Record<string, readonly string[]>> = {
  cli: ['commands', 'errors'],
};

/** Folders that may not import node: built-ins (pure code: no fs, no process, no native). */
const PURE = ['format'];

/** The one file of each rule that is allowed what no other file is. */
const YARGS_FOLDER = 'cli';
const EXIT_FILE = 'src/cli/main.ts';
const ADDON_FOLDER = 'kernels';

const levelOf = new Map<string, number>(LEVELS.flatMap((names, level) => names.map((n) => [n, level] as [string, number])));

/** Why `from` may not import `to` (folders under src/), or null when it may. */
function forbidden(from: string, to: string): string | null {
  if (from === to) return null;
  const a = levelOf.get(from);
  const b = levelOf.get(to);
  if (a === undefined) return `src/${from}/ is in no layer of DESIGN.md`;
  if (b === undefined) return `src/${to}/ is in no layer of DESIGN.md`;
  const only = ONLY[from];
  if (only) return only.includes(to) ? null : `${from} may not depend on ${to}: it reaches the rest through ${only.join(' and ')}`;
  if (b > a) return null;
  if (b === a && SIBLING_EDGES[from]?.includes(to)) return null;
  return `${from} may not depend on ${to}`;
}

interface ImportSite {
  /** The specifier as written, or null for a computed dynamic import or require. */
  specifier: string | null;
  line: number;
  /** require() rather than import: kernels/ loads the addon with a computed require. */
  require?: boolean;
}

interface SourceFacts {
  imports: ImportSite[];
  /** Lines calling process.exit(...). */
  exits: number[];
  /** Lines that could load a native module: createRequire, process.dlopen, a '*.node' string. */
  nativeLoads: number[];
}

function factsOf(fileName: string, text: string): SourceFacts {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const facts: SourceFacts = { imports: [], exits: [], nativeLoads: [] };
  const lineOf = (node: ts.Node) => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
  const literal = (node: ts.Node | undefined) => (node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) ? node.text : null);
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      facts.imports.push({ specifier: literal(node.moduleSpecifier), line: lineOf(node) });
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      facts.imports.push({ specifier: literal(node.moduleReference.expression), line: lineOf(node) });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      facts.imports.push({ specifier: literal(node.argument.literal), line: lineOf(node) });
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword) facts.imports.push({ specifier: literal(node.arguments[0]), line: lineOf(node) });
      if (ts.isIdentifier(callee) && callee.text === 'require') facts.imports.push({ specifier: literal(node.arguments[0]), line: lineOf(node), require: true });
      const name = ts.isPropertyAccessExpression(callee) ? `${callee.expression.getText(sf)}.${callee.name.text}` : callee.getText(sf);
      if (name === 'process.exit') facts.exits.push(lineOf(node));
      if (name === 'process.dlopen' || name === 'createRequire') facts.nativeLoads.push(lineOf(node));
    } else if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && /\.node$/.test(node.text)) {
      facts.nativeLoads.push(lineOf(node));
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return facts;
}

/** The src/ folder a file (a path relative to the repository, with '/') is in, or '' for a file in src/ itself. */
function folderOf(file: string): string {
  const parts = file.split('/');
  return parts.length > 2 ? parts[1]! : '';
}

/**
 * Every rule broken by `files` (repository-relative paths under src/ -> source text), one line each,
 * e.g. "src/commands/ls.ts imports src/cli/output.ts (commands may not depend on cli)".
 */
function layerViolations(files: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const [file, text] of files) {
    const from = folderOf(file);
    const facts = factsOf(file, text);
    for (const { specifier, line, require } of facts.imports) {
      if (specifier === null) {
        if (require && from === ADDON_FOLDER) continue;
        out.push(`${file}:${line} imports a computed specifier (write it as a string literal so the layers can be checked)`);
        continue;
      }
      if (specifier === 'yargs' || specifier.startsWith('yargs/')) {
        if (from !== YARGS_FOLDER) out.push(`${file}:${line} imports ${specifier} (only src/${YARGS_FOLDER}/ may)`);
        continue;
      }
      if (/\.node$/.test(specifier) && from !== ADDON_FOLDER) {
        out.push(`${file}:${line} loads ${specifier} (only src/${ADDON_FOLDER}/ loads the addon)`);
        continue;
      }
      if (!specifier.startsWith('.')) {
        if (PURE.includes(from) && isBuiltin(specifier)) out.push(`${file}:${line} imports ${specifier} (src/${from}/ is pure: no node: built-ins)`);
        continue; // packages
      }
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier)).replace(/\.js$/, '.ts');
      if (!target.startsWith('src/')) {
        out.push(`${file}:${line} imports ${target} (src/ may only import src/ and packages)`);
        continue;
      }
      const to = folderOf(target);
      const why = forbidden(from || '(src)', to || '(src)');
      if (why) out.push(`${file} imports ${target} (${why})`);
    }
    if (file !== EXIT_FILE) for (const line of facts.exits) out.push(`${file}:${line} calls process.exit (only ${EXIT_FILE} may)`);
    if (from !== ADDON_FOLDER) for (const line of facts.nativeLoads) out.push(`${file}:${line} may load a native module (only src/${ADDON_FOLDER}/ loads the addon)`);
  }
  return out;
}

function sourcesUnder(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !/\.(ts|mts|cts|js|mjs)$/.test(entry.name)) continue;
    const abs = path.join(entry.parentPath, entry.name);
    out.set(path.relative(ROOT, abs).split(path.sep).join('/'), readFileSync(abs, 'utf8'));
  }
  return out;
}

describe('the layers of src/', () => {
  it('every import points down the layers, and the yargs/exit/addon rules hold', () => {
    const files = sourcesUnder('src');
    expect(files.size).toBeGreaterThan(20);
    expect(layerViolations(files)).toEqual([]);
  });

  it('the allowed sibling edges join folders of one level and form no cycle', () => {
    for (const [from, tos] of Object.entries(SIBLING_EDGES)) {
      for (const to of tos) expect(levelOf.get(from), `${from} -> ${to}`).toBe(levelOf.get(to));
    }
    const state = new Map<string, 'open' | 'done'>();
    const visit = (n: string, trail: string[]): void => {
      if (state.get(n) === 'done') return;
      if (state.get(n) === 'open') throw new Error(`sibling edges form a cycle: ${[...trail, n].join(' -> ')}`);
      state.set(n, 'open');
      for (const m of SIBLING_EDGES[n] ?? []) visit(m, [...trail, n]);
      state.set(n, 'done');
    };
    for (const n of Object.keys(SIBLING_EDGES)) visit(n, []);
  });
});

describe('layerViolations', () => {
  const check = (files: Record<string, string>) => layerViolations(new Map(Object.entries(files)));

  it('accepts imports that point down, within a folder, and along an allowed sibling edge', () => {
    expect(check({
      'src/cli/main.ts': "import yargs from 'yargs';\nconst { ls } = await import('../commands/ls.js');\nprocess.exit(1);",
      'src/commands/ls.ts': "import { git } from '../git/exec.js';\nimport type { Pointer } from '../format/pointer.js';",
      'src/merge/plan.ts': "import { ObjectStore } from '../store/store.js';\nimport { x } from './strategy.js';",
      'src/kernels/addon.ts': "import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nrequire(p);",
      'src/cli/remote-helper.ts': "import { remoteHelper } from '../commands/remote-helper.js';\nimport { formatError } from '../errors/index.js';",
      'src/format/pointer.ts': "import { PointerError } from '../errors/index.js';\nimport { parse } from 'some-pure-package';",
    })).toEqual([]);
  });

  it('names every import that points up or sideways, in every syntax', () => {
    expect(check({
      'src/commands/a.ts': [
        "import {",
        "  print,",
        "} from '../cli/output.js';",
        "import type { T } from '../cli/types.js';",
        "export { u } from '../cli/u.js';",
        "const m = await import('../cli/main.js');",
        "type V = import('../cli/v.js').V;",
        "// import { w } from '../cli/w.js';",
        "const s = \"import { x } from '../cli/x.js'\";",
      ].join('\n'),
      'src/store/b.ts': "import { g } from '../git/exec.js';",
      'src/git/c.ts': "import { s } from '../store/store.js';",
      'src/format/d.ts': "import * as K from '../kernels/index.js';",
      'src/errors/e.ts': "import { P } from '../format/pointer.js';",
      'src/kernels/f.ts': "import { M } from '../model/llama.js';",
      'src/model/g.ts': "import { p } from '../probe/run.js';",
      'src/widgets/h.ts': "import { E } from '../errors/index.js';",
      'src/cli/remote-helper.ts': "import { ObjectStore } from '../store/store.js';\nimport { storeCodec } from '../store/codec.js';",
      'src/format/units.ts': "import { readFileSync } from 'node:fs';\nimport path from 'path';",
    })).toEqual([
      'src/commands/a.ts imports src/cli/output.ts (commands may not depend on cli)',
      'src/commands/a.ts imports src/cli/types.ts (commands may not depend on cli)',
      'src/commands/a.ts imports src/cli/u.ts (commands may not depend on cli)',
      'src/commands/a.ts imports src/cli/main.ts (commands may not depend on cli)',
      'src/commands/a.ts imports src/cli/v.ts (commands may not depend on cli)',
      'src/store/b.ts imports src/git/exec.ts (store may not depend on git)',
      'src/git/c.ts imports src/store/store.ts (git may not depend on store)',
      'src/format/d.ts imports src/kernels/index.ts (format may not depend on kernels)',
      'src/errors/e.ts imports src/format/pointer.ts (errors may not depend on format)',
      'src/kernels/f.ts imports src/model/llama.ts (kernels may not depend on model)',
      'src/model/g.ts imports src/probe/run.ts (model may not depend on probe)',
      'src/widgets/h.ts imports src/errors/index.ts (src/widgets/ is in no layer of DESIGN.md)',
      'src/cli/remote-helper.ts imports src/store/store.ts (cli may not depend on store: it reaches the rest through commands and errors)',
      'src/cli/remote-helper.ts imports src/store/codec.ts (cli may not depend on store: it reaches the rest through commands and errors)',
      'src/format/units.ts:1 imports node:fs (src/format/ is pure: no node: built-ins)',
      'src/format/units.ts:2 imports path (src/format/ is pure: no node: built-ins)',
    ]);
  });

  it('names yargs outside cli/, process.exit outside cli/main.ts, addon loading outside kernels/', () => {
    expect(check({
      'src/cli/output.ts': 'process.exit(2);',
      'src/commands/c.ts': "import { Argv } from 'yargs';\nimport { hideBin } from 'yargs/helpers';\nif (x) process.exit(1);",
      'src/store/s.ts': "import { createRequire } from 'node:module';\nconst a = createRequire(import.meta.url)('../../build/Release/git_tensor.node');",
      'src/git/g.ts': "const a = require('../../build/x.node');\nprocess.dlopen(m, f);",
      'src/diff/d.ts': 'const m = await import(name);',
      'src/kernels/k.ts': 'const m = await import(name);',
    })).toEqual([
      'src/cli/output.ts:1 calls process.exit (only src/cli/main.ts may)',
      'src/commands/c.ts:1 imports yargs (only src/cli/ may)',
      'src/commands/c.ts:2 imports yargs/helpers (only src/cli/ may)',
      'src/commands/c.ts:3 calls process.exit (only src/cli/main.ts may)',
      'src/store/s.ts:2 may load a native module (only src/kernels/ loads the addon)',
      'src/store/s.ts:2 may load a native module (only src/kernels/ loads the addon)',
      'src/git/g.ts:1 loads ../../build/x.node (only src/kernels/ loads the addon)',
      'src/git/g.ts:1 may load a native module (only src/kernels/ loads the addon)',
      'src/git/g.ts:2 may load a native module (only src/kernels/ loads the addon)',
      'src/diff/d.ts:1 imports a computed specifier (write it as a string literal so the layers can be checked)',
      'src/kernels/k.ts:1 imports a computed specifier (write it as a string literal so the layers can be checked)',
    ]);
  });
});
