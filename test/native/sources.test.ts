// binding.gyp (the node-gyp fallback) must build exactly the CPU sources of native/CMakeLists.txt.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect, test } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function cmakeSources(): string[] {
  const text = readFileSync(path.join(root, 'native', 'CMakeLists.txt'), 'utf8');
  const block = /set\(GT_CPU_SOURCES\s+([^)]*)\)/.exec(text);
  if (!block) throw new Error('GT_CPU_SOURCES not found in native/CMakeLists.txt');
  return block[1]!.split(/\s+/).filter(Boolean).map((s) => `native/${s}`).sort();
}

function gypSources(): string[] {
  const text = readFileSync(path.join(root, 'binding.gyp'), 'utf8').replace(/#.*$/gm, '');
  const lists = [...text.matchAll(/'sources'\s*:\s*\[([^\]]*)\]/g)].map((m) => m[1]!);
  return lists.flatMap((l) => [...l.matchAll(/'([^']+)'/g)].map((m) => m[1]!)).sort();
}

test('binding.gyp and native/CMakeLists.txt build the same CPU sources', () => {
  const cmake = cmakeSources();
  expect(cmake.length).toBeGreaterThan(3);
  expect(gypSources()).toEqual(cmake);
});
