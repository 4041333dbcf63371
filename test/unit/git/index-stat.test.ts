// updateIndexStat (src/git/index-stat.ts) against indexes written by the real git: the stat of matching
// entries changes, nothing else does, and git reads the result (its checksum included).

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { updateIndexStat } from '../../../src/git/index-stat.js';

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

function git(dir: string, args: string[]): string {
  const r = spawnSync('git', args, { cwd: dir, env: { PATH: process.env.PATH, HOME: dir, GIT_CONFIG_NOSYSTEM: '1' } });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** A repository with files at several depths, so v4's prefix compression has work to do. */
function repoWith(opts: { format?: string; version?: number } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'git-tensor-index-'));
  roots.push(dir);
  git(dir, ['init', '-q', ...(opts.format ? [`--object-format=${opts.format}`] : [])]);
  for (const p of ['a.txt', 'dir/b.bin', 'dir/sub/c.bin', 'dir/sub/d.txt', 'e.txt']) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), `content of ${p}\n`);
  }
  git(dir, ['add', '.']);
  if (opts.version) git(dir, ['update-index', '--index-version', String(opts.version)]);
  return dir;
}

/** `git ls-files --debug` records by path. */
function entries(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  let path = '';
  for (const line of git(dir, ['ls-files', '--debug']).split('\n')) {
    if (!line.startsWith(' ')) path = line;
    else out.set(path, (out.get(path) ?? '') + line.trim() + '\n');
  }
  return out;
}

function oidOf(dir: string, path: string): string {
  return git(dir, ['ls-files', '-s', '--', path]).split(' ')[1]!;
}

describe('updateIndexStat', () => {
  for (const [label, opts] of [['version 2', {}], ['version 4', { version: 4 }], ['sha256, version 3', { format: 'sha256', version: 3 }]] as const) {
    it(`${label}: writes the stat of the named entry only`, () => {
      const dir = repoWith(opts);
      const before = entries(dir);
      // Replace dir/sub/c.bin by another file (a new inode, size and times), as the checkout writer does.
      writeFileSync(join(dir, 'other'), 'a longer replacement of the file');
      const stat = statSync(join(dir, 'other'), { bigint: true });
      const format = git(dir, ['rev-parse', '--show-object-format']).trim();
      const done = updateIndexStat(join(dir, '.git', 'index'), [{ path: 'dir/sub/c.bin', oid: oidOf(dir, 'dir/sub/c.bin'), stat }], format);
      expect(done).toEqual(['dir/sub/c.bin']);
      const after = entries(dir); // git reads the index: a wrong checksum would fail here
      for (const [p, rec] of before) if (p !== 'dir/sub/c.bin') expect(after.get(p)).toBe(rec);
      const rec = after.get('dir/sub/c.bin')!;
      expect(rec).toContain(`ino: ${stat.ino}`);
      expect(rec).toContain(`size: ${stat.size}`);
      expect(rec).toContain(`mtime: ${stat.mtimeNs / 1_000_000_000n}:`);
      expect(git(dir, ['ls-files', '-s', 'dir/sub/c.bin'])).toContain(oidOf(dir, 'dir/sub/c.bin'));
    });
  }

  it('leaves an entry that names another blob, and reports no edit', () => {
    const dir = repoWith();
    const before = entries(dir);
    const stat = statSync(join(dir, 'a.txt'), { bigint: true });
    expect(updateIndexStat(join(dir, '.git', 'index'), [{ path: 'e.txt', oid: oidOf(dir, 'a.txt'), stat }], 'sha1')).toEqual([]);
    expect(entries(dir)).toEqual(before);
  });

  it('does nothing while another command holds the lock, and leaves the lock alone', () => {
    const dir = repoWith();
    writeFileSync(join(dir, '.git', 'index.lock'), '');
    const stat = statSync(join(dir, 'a.txt'), { bigint: true });
    expect(updateIndexStat(join(dir, '.git', 'index'), [{ path: 'a.txt', oid: oidOf(dir, 'a.txt'), stat }], 'sha1')).toBeNull();
    expect(statSync(join(dir, '.git', 'index.lock')).isFile()).toBe(true);
  });

  it('refuses a split index and releases its lock', () => {
    const dir = repoWith();
    git(dir, ['update-index', '--split-index']);
    const stat = statSync(join(dir, 'a.txt'), { bigint: true });
    expect(updateIndexStat(join(dir, '.git', 'index'), [{ path: 'a.txt', oid: oidOf(dir, 'a.txt'), stat }], 'sha1')).toBeNull();
    git(dir, ['update-index', '--refresh']); // the lock is gone
  });
});
