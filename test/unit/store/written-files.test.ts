// WrittenFiles (src/store/written-files.ts): the record that lets clean skip hashing a file git-tensor wrote.

import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WrittenFiles } from '../../../src/store/written-files.js';

let root: string;
let tree: string;
let written: WrittenFiles;
const POINTER = 'git-tensor v1\nopaque 3 ' + 'a'.repeat(64) + '\n';

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'git-tensor-written-'));
  tree = join(root, 'tree');
  written = new WrittenFiles(join(root, 'store'), tree);
  mkdirSync(tree);
  writeFileSync(join(tree, 'f'), 'abc');
  written.record('f', POINTER, statSync(join(tree, 'f'), { bigint: true }));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('WrittenFiles: a record answers only for the very version of the file it was made for', () => {
  it('answers the pointer while the file is untouched', () => {
    expect(written.lookup('f')).toBe(POINTER);
    expect(written.lookup('g')).toBeUndefined();
  });

  it('forgets after a write that keeps the size and sets the mtime back (the ctime moved)', () => {
    const st = statSync(join(tree, 'f'));
    writeFileSync(join(tree, 'f'), 'xyz');
    utimesSync(join(tree, 'f'), st.atime, st.mtime);
    expect(written.lookup('f')).toBeUndefined();
  });

  it('forgets after an append, a chmod, or another file renamed onto the path', () => {
    appendFileSync(join(tree, 'f'), 'd');
    expect(written.lookup('f')).toBeUndefined();
    written.record('f', POINTER, statSync(join(tree, 'f'), { bigint: true }));
    chmodSync(join(tree, 'f'), 0o600);
    expect(written.lookup('f')).toBeUndefined();
    written.record('f', POINTER, statSync(join(tree, 'f'), { bigint: true }));
    writeFileSync(join(tree, 'g'), 'abc');
    renameSync(join(tree, 'g'), join(tree, 'f'));
    expect(written.lookup('f')).toBeUndefined();
  });

  it('a damaged record is no answer; another working tree sharing the store has its own records', () => {
    const other = new WrittenFiles(join(root, 'store'), join(root, 'elsewhere'));
    expect(other.lookup('f')).toBeUndefined();
    for (const name of readdirSync(join(root, 'store', 'written'))) writeFileSync(join(root, 'store', 'written', name), '{not json\n' + POINTER);
    expect(written.lookup('f')).toBeUndefined();
  });
});
