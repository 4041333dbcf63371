// GitPackWriter (src/git/pack-writer.ts) against the real git: the packs it writes pass `git verify-pack`,
// `git index-pack` of the same pack gives a byte-identical .idx, every object id is the one git computes
// and every blob reads back whole; Adler-32 against zlib's; and the commits TransferRepo makes are the
// ones `git fast-import` made before it (so a pack pushed by an older git-tensor gives the same refs).

import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { adler32, entryHeader, GitPackWriter, packIndex } from '../../../src/git/pack-writer.js';
import { TransferRepo } from '../../../src/remote/transfer-repo.js';

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

const env = { PATH: process.env.PATH, HOME: tmpdir(), GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };

function git(dir: string, args: string[], input?: string | Buffer): Buffer {
  const r = spawnSync('git', args, { cwd: dir, env, input, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr.toString()}`);
  return r.stdout;
}

function bareRepo(): string {
  const dir = mkdtempSync(join(tmpdir(), 'git-tensor-gitpack-'));
  roots.push(dir);
  git(dir, ['init', '-q', '--bare', '.']);
  return dir;
}

/** Deterministic bytes that zlib cannot shrink much. */
function noise(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let k = 0; k < n; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[k] = x & 0xff;
  }
  return out;
}

const packFiles = (dir: string) => readdirSync(join(dir, 'objects', 'pack')).sort();

describe('adler32', () => {
  it('equals the checksum zlib writes at the end of its stream, whole or continued piece by piece', () => {
    const cases = [Buffer.alloc(0), Buffer.from([0xff]), noise(3799, 1), noise(3800, 2), noise(3801, 3), noise(65536, 4), Buffer.alloc(1 << 20, 0xff)];
    for (const data of cases) {
      const z = deflateSync(data);
      const expected = z.readUInt32BE(z.length - 4);
      expect(adler32(1, data)).toBe(expected);
      let continued = 1;
      for (let at = 0; at < data.length; at += 7777) continued = adler32(continued, data.subarray(at, at + 7777));
      expect(continued).toBe(expected);
    }
  });
});

describe('entryHeader', () => {
  it('encodes type and size as gitformat-pack describes: 4 bits, then 7 a byte, low bits first', () => {
    expect([...entryHeader('blob', 0)]).toEqual([0x30]);
    expect([...entryHeader('blob', 15)]).toEqual([0x3f]);
    expect([...entryHeader('blob', 16)]).toEqual([0xb0, 0x01]);
    expect([...entryHeader('commit', 2048)]).toEqual([0x90, 0x80, 0x01]);
    // 2^35 + 3: 3 in the first byte; 2^35 / 16 = 2^31 = 2^(4 * 7 + 3), so the fifth 7-bit group holds 2^3.
    expect([...entryHeader('tree', 2 ** 35 + 3)]).toEqual([0xa3, 0x80, 0x80, 0x80, 0x80, 0x08]);
  });
});

describe('GitPackWriter', () => {
  // Sizes around the entry header's 4- and 7-bit steps and the 64 KiB stored deflate blocks, and a blob
  // of several MiB read in steps.
  const sizes = [0, 1, 15, 16, 127, 2048, 65535, 65536, 65537, 65535 * 16, 65535 * 16 + 1, 3 * 1024 * 1024 + 7];

  it('writes packs git verifies, indexes as git does, and reads back object by object', () => {
    const dir = bareRepo();
    const files = sizes.map((n, k) => {
      const path = join(dir, `blob-${k}`);
      writeFileSync(path, noise(n, k + 11));
      return path;
    });
    const pack = GitPackWriter.create(join(dir, 'objects', 'pack'), files.length + 2);
    const ids = files.map((f) => pack.addBlobFile(f));
    const tree = pack.addObject('tree', Buffer.concat([Buffer.from('100644 a\0'), Buffer.from(ids[3]!, 'hex')]));
    const commit = pack.addObject('commit', Buffer.from(`tree ${tree}\nauthor a <a@b> 0 +0000\ncommitter a <a@b> 0 +0000\n\nm\n`));
    const name = pack.finish();
    expect(packFiles(dir)).toEqual([`pack-${name}.idx`, `pack-${name}.pack`]);

    const idx = join(dir, 'objects', 'pack', `pack-${name}.idx`);
    const listing = git(dir, ['verify-pack', '-v', idx]).toString();
    for (const [k, id] of ids.entries()) expect(listing).toMatch(new RegExp(`^${id} blob +${sizes[k]} `, 'm'));
    expect(listing).toMatch(new RegExp(`^${tree} tree `, 'm'));
    expect(listing).toMatch(new RegExp(`^${commit} commit `, 'm'));

    // git's own index of the same pack, made from the pack alone, is byte for byte the one written here.
    const copy = join(dir, 'copy.pack');
    copyFileSync(join(dir, 'objects', 'pack', `pack-${name}.pack`), copy);
    git(dir, ['index-pack', copy]);
    expect(readFileSync(join(dir, 'copy.idx')).equals(readFileSync(idx))).toBe(true);

    for (const [k, f] of files.entries()) {
      expect(ids[k]).toBe(git(dir, ['hash-object', f]).toString().trim());
      expect(git(dir, ['cat-file', 'blob', ids[k]!]).equals(readFileSync(f))).toBe(true);
    }
    expect(git(dir, ['cat-file', '-t', commit]).toString().trim()).toBe('commit');
    git(dir, ['update-ref', 'refs/heads/main', commit]);
    git(dir, ['fsck', '--strict', '--no-dangling']);
  });

  it('refuses a pack with fewer or more objects than announced, and leaves nothing behind', () => {
    const dir = bareRepo();
    const short = GitPackWriter.create(join(dir, 'objects', 'pack'), 2);
    short.addObject('blob', Buffer.from('one'));
    expect(() => short.finish()).toThrow(expect.objectContaining({ code: 'E_INTERNAL' }));
    const long = GitPackWriter.create(join(dir, 'objects', 'pack'), 1);
    long.addObject('blob', Buffer.from('one'));
    expect(() => long.addObject('blob', Buffer.from('two'))).toThrow(expect.objectContaining({ code: 'E_INTERNAL' }));
    long.abort();
    const twice = GitPackWriter.create(join(dir, 'objects', 'pack'), 2);
    twice.addObject('blob', Buffer.from('same'));
    twice.addObject('blob', Buffer.from('same'));
    expect(() => twice.finish()).toThrow(/written twice/);
    expect(packFiles(dir)).toEqual([]);
  });

  it('puts offsets from 2 GiB on in the index\'s table of 8-byte offsets', () => {
    const oid = (b: number) => Buffer.alloc(20, b);
    const entries = [
      { oid: oid(3), offset: 12, crc: 1 },
      { oid: oid(1), offset: 2 ** 31 + 5, crc: 2 },
      { oid: oid(2), offset: 2 ** 33, crc: 3 },
    ];
    const idx = packIndex(entries, Buffer.alloc(20, 9));
    const n = 3;
    const offsets = 8 + 1024 + n * 24;
    // Sorted by id: oid(1), oid(2), oid(3).
    expect(idx.readUInt32BE(8 + 4 * 1)).toBe(1); // fan-out: one id starts with 0x01
    expect(idx.readUInt32BE(8 + 4 * 255)).toBe(3);
    expect([0, 1, 2].map((k) => idx.readUInt32BE(8 + 1024 + n * 20 + 4 * k))).toEqual([2, 3, 1]);
    expect([0, 1, 2].map((k) => idx.readUInt32BE(offsets + 4 * k))).toEqual([0x80000000, 0x80000001, 12]);
    expect(idx.readBigUInt64BE(offsets + 12)).toBe(BigInt(2 ** 31 + 5));
    expect(idx.readBigUInt64BE(offsets + 20)).toBe(BigInt(2 ** 33));
    expect(idx.length).toBe(offsets + 12 + 16 + 40);
  });
});

describe('TransferRepo.writeCommits', () => {
  it('makes the commits git fast-import made for the same packs, and creates their refs', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'git-tensor-transfer-'));
    roots.push(parent);
    const idx = join(parent, 'x.idx');
    const packPath = join(parent, 'x.pack');
    writeFileSync(idx, noise(640, 5));
    writeFileSync(packPath, noise(300_000, 6));
    const commits = [
      { ref: 'refs/tensor/packs/abc', message: 'git-tensor pack abc\n\n10 objects, 300000 bytes\n', files: [{ name: 'idx', path: idx }, { name: 'pack', path: packPath }] },
      { ref: 'refs/tensor/idx/abc', message: 'git-tensor pack index abc\n', files: [{ name: 'idx', path: idx }] },
    ];
    const repo = await TransferRepo.create({ parent, baseEnv: env });
    await repo.writeCommits(commits);
    const ours = commits.map((c) => git(repo.dir, ['rev-parse', c.ref]).toString().trim());
    git(repo.dir, ['fsck', '--strict', '--no-dangling']);
    repo.dispose();

    // The stream the previous implementation gave git fast-import, in a repository of its own.
    const ref = bareRepo();
    const parts: Buffer[] = [];
    const marks = new Map<string, number>();
    for (const c of commits) {
      for (const f of c.files) {
        if (marks.has(f.path)) continue;
        marks.set(f.path, marks.size + 1);
        const bytes = readFileSync(f.path);
        parts.push(Buffer.from(`blob\nmark :${marks.get(f.path)}\ndata ${bytes.length}\n`), bytes, Buffer.from('\n'));
      }
      parts.push(Buffer.from(`commit ${c.ref}\ncommitter git-tensor <git-tensor@localhost> 0 +0000\ndata ${Buffer.byteLength(c.message)}\n${c.message}`));
      parts.push(Buffer.from(c.files.map((f) => `M 100644 :${marks.get(f.path)} ${f.name}\n`).sort().join('') + '\n'));
    }
    parts.push(Buffer.from('done\n'));
    git(ref, ['fast-import', '--quiet', '--done'], Buffer.concat(parts));
    expect(commits.map((c) => git(ref, ['rev-parse', c.ref]).toString().trim())).toEqual(ours);
  });
});
