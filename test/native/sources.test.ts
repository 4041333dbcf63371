// binding.gyp (the node-gyp fallback) must build exactly the CPU sources of native/CMakeLists.txt, and
// the same zstd library: the folders CMake globs are the ones scripts/build-native.mjs lists for gyp.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect, test } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cmakeText = readFileSync(path.join(root, 'native', 'CMakeLists.txt'), 'utf8');
const gypText = readFileSync(path.join(root, 'binding.gyp'), 'utf8').replace(/#.*$/gm, '');

function cmakeSources(): string[] {
  const block = /set\(GT_CPU_SOURCES\s+([^)]*)\)/.exec(cmakeText);
  if (!block) throw new Error('GT_CPU_SOURCES not found in native/CMakeLists.txt');
  return block[1]!.split(/\s+/).filter(Boolean).map((s) => `native/${s}`).sort();
}

/** The literal source files of binding.gyp's targets; the zstd target's command is left out. */
function gypSources(): string[] {
  const lists = [...gypText.matchAll(/'sources'\s*:\s*\[([^\]]*)\]/g)].map((m) => m[1]!);
  return lists.flatMap((l) => [...l.matchAll(/'([^']+)'/g)].map((m) => m[1]!)).filter((s) => !s.startsWith('<!')).sort();
}

test('binding.gyp and native/CMakeLists.txt build the same CPU sources', () => {
  const cmake = cmakeSources();
  expect(cmake.length).toBeGreaterThan(3);
  expect(gypSources()).toEqual(cmake);
});

test('binding.gyp compiles the zstd files that build-native.mjs lists, which are the folders CMake globs', () => {
  expect(gypText).toContain("'sources': ['<!@(node scripts/build-native.mjs --zstd-sources)']");
  const listed = execFileSync(process.execPath, ['scripts/build-native.mjs', '--zstd-sources'], { cwd: root, encoding: 'utf8' })
    .trim().split('\n');
  const dir = execFileSync(process.execPath, ['scripts/build-native.mjs', '--zstd-dir'], { cwd: root, encoding: 'utf8' }).trim();
  for (const f of listed) expect(existsSync(path.join(root, f)), f).toBe(true);
  const rel = (f: string) => path.relative(dir, path.join(root, f));
  // Compression and decompression are both there, each file once.
  expect(listed.map(rel)).toEqual(expect.arrayContaining(['compress/zstd_compress.c', 'decompress/zstd_decompress.c', 'common/xxhash.c']));
  expect(new Set(listed).size).toBe(listed.length);
  const folders = [...new Set(listed.filter((f) => f.endsWith('.c')).map((f) => path.dirname(rel(f))))].sort();
  const globbed = [...cmakeText.matchAll(/"\$\{GT_ZSTD_DIR\}\/(\w+)\/\*\.c"/g)].map((m) => m[1]!).sort();
  expect(globbed).toEqual(folders);
});
