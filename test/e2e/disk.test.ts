// The disk fills while a user works: `git checkout` of a checkpoint that does not fit, `git tensor gc`
// on a store with little room left, a push whose scratch space runs out. Each fails with a clear error and
// leaves nothing half-written (no truncated working-tree file, every pack whole, fsck clean), and gc needs
// room for one group of packs, not for a second copy of the store. (`git add` on a full disk is in
// faults.test.ts.) The small disk is a real tmpfs, which needs root: without it the tests are skipped.

import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTensor, toSafetensors } from '../helpers/models.js';
import { canMount, mountTmpfs } from '../helpers/tmpfs.js';
import { makeRepo, type Repo } from '../helpers/repo.js';

const MiB = 1 << 20;


const mounted: string[] = [];
afterEach(() => {
  for (const dir of mounted.splice(0)) spawnSync('umount', [dir]);
});

function bytesUnder(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? bytesUnder(p) : statSync(p).size;
  }
  return total;
}

/** Moves `dir` (with what it holds) onto a tmpfs with `spare` bytes free beyond its contents. */
function onSmallDisk(dir: string, spare: number): void {
  const saved = `${dir}.saved`;
  cpSync(dir, saved, { recursive: true });
  // tmpfs counts whole pages per file: leave a page per file and 64 KiB of slack for directories.
  const files = (function count(d: string): number {
    return readdirSync(d, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? count(join(d, e.name)) + 1 : 1), 0);
  })(saved);
  expect(mountTmpfs(dir, bytesUnder(saved) + files * 4096 + (64 << 10) + spare)).toBe(true);
  mounted.push(dir);
  cpSync(saved, dir, { recursive: true });
  rmSync(saved, { recursive: true, force: true });
}

function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** A checkpoint of `mib` MiB of random F32 (incompressible: its stored size is its size). */
function randomCheckpoint(mib: number, seed: string): Buffer {
  return toSafetensors([makeTensor('model.weight', 'F32', [mib * 256, 1024], seed)]);
}

function expectFsckClean(repo: Repo): void {
  const r = repo.gitTensor(['fsck', '--json'], { allowFail: true });
  expect(r.status, r.stdout + r.stderr).toBe(0);
  const report = JSON.parse(r.stdout) as { corrupt: unknown[]; missing: unknown[] };
  expect(report.corrupt).toEqual([]);
  expect(report.missing).toEqual([]);
}

function expectClearDiskFull(stderr: string): void {
  expect(stderr).toContain('error[E_DISK_FULL]');
  expect(stderr).toMatch(/^hint: Free space/m);
  expect(stderr).not.toMatch(/internal error|    at /);
}

describe.skipIf(!canMount)('a full disk (needs root to mount a small tmpfs)', () => {
  it('git checkout of a checkpoint that does not fit fails with E_DISK_FULL and writes no truncated file', () => {
    const repo = makeRepo();
    const model = randomCheckpoint(4, 'disk/checkout');
    repo.write('model.safetensors', model);
    repo.commit(['model.safetensors'], 'model');
    repo.remove('model.safetensors');
    onSmallDisk(repo.dir, 2 * MiB);
    expect(freeBytes(repo.dir)).toBeLessThan(model.length);
    const index = repo.git(['ls-files', '--stage']).stdout;

    const checkout = repo.git(['checkout', '--', 'model.safetensors'], { allowFail: true });
    expect(checkout.status).not.toBe(0);
    expectClearDiskFull(checkout.stderr);
    expect(checkout.stderr).toContain('model.safetensors: not enough free disk');
    // git wrote nothing: no truncated checkpoint that `git status` would call modified.
    expect(repo.exists('model.safetensors')).toBe(false);
    expect(repo.git(['status', '--porcelain']).stdout).toBe(' D model.safetensors\n');
    expect(repo.git(['ls-files', '--stage']).stdout).toBe(index);
    expectFsckClean(repo);
  });

  it('a checkout that replaces a checkpoint counts the old file as room, and writes the new one exactly', () => {
    const repo = makeRepo();
    const v1 = randomCheckpoint(4, 'disk/v1');
    const v2 = randomCheckpoint(4, 'disk/v2');
    repo.write('model.safetensors', v1);
    repo.commit(['model.safetensors'], 'v1');
    repo.write('model.safetensors', v2);
    repo.commit(['model.safetensors'], 'v2');
    onSmallDisk(repo.dir, 2 * MiB);
    expect(freeBytes(repo.dir)).toBeLessThan(v1.length);

    const checkout = repo.git(['checkout', '-q', 'HEAD~1', '--', 'model.safetensors'], { allowFail: true });
    expect(checkout.status, checkout.stderr).toBe(0);
    expect(repo.read('model.safetensors').equals(v1)).toBe(true);
  });

  it('gc rewrites the store a group of packs at a time: room for one group is enough', () => {
    const repo = makeRepo();
    const versions = [1, 2, 3, 4, 5, 6].map((k) => randomCheckpoint(1, `disk/gc${k}`));
    for (const [k, v] of versions.entries()) {
      repo.write(`m${k}.safetensors`, v);
      repo.commit([`m${k}.safetensors`], `m${k}`);
    }
    repo.git(['config', 'tensor.gcPackSize', '2m']);
    const packsBefore = repo.packFiles().filter((f) => f.endsWith('.pack')).length;
    expect(packsBefore).toBe(6);
    // 6 MiB of packs; 3 MiB free: a second copy of the store (what a one-pack gc writes) does not fit.
    onSmallDisk(repo.storeDir, 3 * MiB);
    expect(freeBytes(repo.storeDir)).toBeLessThan(repo.packBytes());

    const gc = repo.gitTensor(['gc', '--json'], { allowFail: true });
    expect(gc.status, gc.stderr).toBe(0);
    const report = JSON.parse(gc.stdout) as { packsAfter: number; objects: number };
    expect(report.packsAfter).toBe(3);
    expect(repo.packFiles().filter((f) => f.endsWith('.pack'))).toHaveLength(3);
    expectFsckClean(repo);
    for (const [k, v] of versions.entries()) {
      repo.remove(`m${k}.safetensors`);
      repo.git(['checkout', '--', `m${k}.safetensors`]);
      expect(repo.read(`m${k}.safetensors`).equals(v), `m${k}`).toBe(true);
    }
    // A second gc has nothing to do and changes nothing.
    const packs = repo.packFiles();
    expect(repo.gitTensor(['gc']).status).toBe(0);
    expect(repo.packFiles()).toEqual(packs);
  });

  it('gc without room for one group fails with E_DISK_FULL and every pack stays as it was', () => {
    const repo = makeRepo();
    for (const k of [1, 2, 3]) {
      repo.write(`m${k}.safetensors`, randomCheckpoint(1, `disk/gcfull${k}`));
      repo.commit([`m${k}.safetensors`], `m${k}`);
    }
    onSmallDisk(repo.storeDir, 256 << 10);
    const packs = repo.packFiles();

    const gc = repo.gitTensor(['gc'], { allowFail: true });
    expect(gc.status).toBe(1);
    expectClearDiskFull(gc.stderr);
    expect(repo.packFiles()).toEqual(packs);
    expect(readdirSync(join(repo.storeDir, 'tmp'))).toEqual([]);
    expectFsckClean(repo);
  });

  it('a push that runs out of scratch space fails clearly and the host gets no branch', () => {
    const repo = makeRepo();
    repo.write('model.safetensors', randomCheckpoint(4, 'disk/push'));
    repo.commit(['model.safetensors'], 'model');
    const host = join(repo.root, 'host.git');
    spawnSync('git', ['init', '-q', '--bare', host]);
    repo.git(['remote', 'add', 'origin', `tensor::file://${host}`]);
    repo.git(['config', 'tensor.transferRetries', '0']);
    // The store keeps its packs; its tmp/ (where the transfer repository is built) has 256 KiB.
    onSmallDisk(repo.storeDir, 256 << 10);
    const packs = repo.packFiles();

    const push = repo.git(['push', 'origin', 'main'], { allowFail: true });
    expect(push.status).not.toBe(0);
    expect(push.stderr).toMatch(/E_DISK_FULL|No space left on device/);
    expect(push.stderr).not.toMatch(/internal error|    at /);
    expect(spawnSync('git', ['--git-dir', host, 'for-each-ref', '--format=%(refname)', 'refs/heads']).stdout.toString()).toBe('');
    expect(repo.packFiles()).toEqual(packs);
    expect(readdirSync(join(repo.storeDir, 'tmp')).filter((f) => !f.startsWith('.'))).toEqual([]);
    expectFsckClean(repo);

    // Room again: the same push goes through, and a clone gets the exact checkpoint.
    spawnSync('mount', ['-o', 'remount,size=64m', repo.storeDir]);
    const again = repo.git(['push', 'origin', 'main'], { allowFail: true });
    expect(again.status, again.stderr).toBe(0);
    expect(spawnSync('git', ['--git-dir', host, 'rev-parse', 'main']).stdout.toString()).toBe(repo.git(['rev-parse', 'main']).stdout);
  });
});
