// `git cat-file --batch` output, from git's Documentation/git-cat-file.txt, "BATCH OUTPUT":
//
//   For every object presented to --batch, the output is:
//       <oid> SP <type> SP <size> LF
//       <contents> LF
//   If a name is specified on stdin that cannot be resolved to an object in the repository, then
//   cat-file will ignore any custom format and print:
//       <object> SP missing LF
//   If a name is specified that might refer to more than one object (an ambiguous short sha), then
//   cat-file will ignore any custom format and print:
//       <object> SP ambiguous LF
//
// The wire below is written out by hand from that grammar; the repository tests run the real git.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ProtocolError } from '../../../src/errors/index.js';
import { batchCheck, BatchOutputReader, CatFile, pointerCandidates } from '../../../src/git/cat-file.js';
import { MAX_POINTER_BYTES } from '../../../src/format/pointer.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

/** The wire for objects given as [oid, type, content] (or [input, 'missing']). */
function wire(records: ([string, string, Buffer] | [string, 'missing' | 'ambiguous'])[]): Buffer {
  return Buffer.concat(records.map((r) => (r.length === 2
    ? Buffer.from(`${r[0]} ${r[1]}\n`)
    : Buffer.concat([Buffer.from(`${r[0]} ${r[1]} ${r[2].length}\n`), r[2], Buffer.from('\n')]))));
}

async function* chunked(bytes: Buffer, sizes: readonly number[]): AsyncGenerator<Buffer> {
  let k = 0;
  for (let at = 0; at < bytes.length; k++) {
    const n = Math.max(1, sizes[k % sizes.length]!);
    yield bytes.subarray(at, at + n);
    at += n;
  }
}

describe('BatchOutputReader', () => {
  it('reads headers and contents, including an empty blob and a missing object', async () => {
    const r = new BatchOutputReader(chunked(wire([[A, 'blob', Buffer.from('hello\nworld')], ['HEAD:nope', 'missing'], [B, 'blob', Buffer.alloc(0)]]), [3]));
    expect(await r.next()).toEqual({ oid: A, type: 'blob', size: 11 });
    expect((await r.read()).toString()).toBe('hello\nworld');
    expect(await r.next()).toEqual({ oid: 'HEAD:nope', type: 'missing', size: -1 });
    expect(await r.next()).toEqual({ oid: B, type: 'blob', size: 0 });
    expect((await r.read()).length).toBe(0);
    expect(await r.next()).toBeNull();
  });

  it('skips content left unread, and peeks without consuming', async () => {
    const big = Buffer.alloc(100_000, 7);
    const r = new BatchOutputReader(chunked(wire([[A, 'blob', big], [B, 'tree', Buffer.from('xyz')]]), [4096]));
    await r.next();
    expect([...(await r.peek(4))]).toEqual([7, 7, 7, 7]);
    expect((await r.next())!.oid).toBe(B);
    expect((await r.peek(100)).toString()).toBe('xyz');
    expect((await r.read()).toString()).toBe('xyz');
  });

  it('reads --batch-check output (headers only)', async () => {
    const r = new BatchOutputReader(chunked(Buffer.from(`${A} blob 123\n${B} missing\n`), [5]), false);
    expect(await r.next()).toEqual({ oid: A, type: 'blob', size: 123 });
    expect(await r.next()).toEqual({ oid: B, type: 'missing', size: -1 });
    expect(await r.next()).toBeNull();
  });

  it('refuses output cut inside an object, content without its newline, and a malformed header', async () => {
    const whole = wire([[A, 'blob', Buffer.from('abcdef')]]);
    const cut = new BatchOutputReader(chunked(whole.subarray(0, whole.length - 3), [2]));
    await cut.next();
    await expect(cut.read()).rejects.toThrow(ProtocolError);
    const noNewline = new BatchOutputReader(chunked(Buffer.concat([whole.subarray(0, whole.length - 1), Buffer.from('X')]), [64]));
    await noNewline.next();
    await expect(noNewline.read()).rejects.toThrow(/newline/);
    await expect(new BatchOutputReader(chunked(Buffer.from('garbage\n'), [64])).next()).rejects.toThrow(ProtocolError);
    await expect(new BatchOutputReader(chunked(Buffer.from(`${A} blob 3`), [64])).next()).rejects.toThrow(/header/);
  });

  it('gives the same records however the pipe splits the output, whatever each caller reads or skips', async () => {
    const record = fc.oneof(
      fc.tuple(fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => Buffer.from(b).toString('hex')), fc.constantFrom('blob', 'tree', 'commit'), fc.uint8Array({ maxLength: 300 })),
      fc.tuple(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !/[\n ]/.test(s)), fc.constantFrom('missing', 'ambiguous')),
    );
    await fc.assert(fc.asyncProperty(fc.array(record, { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 8 }), fc.array(fc.constantFrom('read', 'skip', 'stream', 'peek'), { minLength: 1 }),
      async (records, sizes, actions) => {
        const recs = records.map((r) => (r.length === 3 ? [r[0], r[1], Buffer.from(r[2])] : r) as [string, string, Buffer] | [string, 'missing']);
        const r = new BatchOutputReader(chunked(wire(recs), sizes));
        for (let k = 0; k < recs.length; k++) {
          const want = recs[k]!;
          const head = await r.next();
          expect(head!.oid).toBe(want[0]);
          expect(head!.type).toBe(want[1]);
          if (want.length === 2) continue;
          const action = actions[k % actions.length];
          if (action === 'read') expect((await r.read()).equals(want[2])).toBe(true);
          if (action === 'peek') expect((await r.peek(5)).equals(want[2].subarray(0, 5))).toBe(true);
          if (action === 'stream') {
            const parts: Buffer[] = [];
            for await (const p of r.stream()) parts.push(p);
            expect(Buffer.concat(parts).equals(want[2])).toBe(true);
          }
        }
        expect(await r.next()).toBeNull();
      }), { numRuns: 200 });
  });
});

describe('CatFile against a real repository', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cat-file-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const git = (args: string[], input?: Buffer | string) => {
    const r = spawnSync('git', args, { cwd: dir, input, maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(r.stderr.toString());
    return r.stdout.toString().trim();
  };
  git(['init', '-q']);
  const pointer = git(['hash-object', '-w', '--stdin'], 'git-tensor v1 opaque\nsize 3\nid ' + 'c'.repeat(64) + '\n');
  const text = git(['hash-object', '-w', '--stdin'], 'just text\n');
  const large = git(['hash-object', '-w', '--stdin'], Buffer.alloc(4 << 20, 1));

  it('answers one object at a time (the filter reading index versions)', async () => {
    const c = new CatFile({ cwd: dir });
    try {
      expect(await c.ask(large)).toEqual({ oid: large, type: 'blob', size: 4 << 20 });
      // Its content is never read: the next ask skips it.
      expect(await c.ask(text)).toEqual({ oid: text, type: 'blob', size: 10 });
      expect((await c.reader.read()).toString()).toBe('just text\n');
      expect((await c.ask('f'.repeat(40)))!.type).toBe('missing');
      expect(await c.ask('bad\nspec')).toBeNull();
    } finally {
      c.close();
    }
  });

  it('batchCheck gives types and sizes without content, missing objects included', () => {
    expect(batchCheck([text, 'e'.repeat(40)], { cwd: dir })).toEqual([
      { oid: text, type: 'blob', size: 10 },
      { oid: 'e'.repeat(40), type: 'missing', size: -1 },
    ]);
    expect(batchCheck([], { cwd: dir, all: true }).map((h) => h.oid).sort()).toEqual([pointer, text, large].sort());
  });

  it('a git that cannot answer is an E_GIT error with its message, not a hang', async () => {
    const c = new CatFile({ cwd: tmpdir(), env: { ...process.env, GIT_DIR: join(dir, 'no-such-dir') } });
    try {
      await expect(c.ask(text)).rejects.toThrow(/git cat-file stopped .*not a git repository/);
    } finally {
      c.close();
    }
  });

  it('pointerCandidates yields only blobs that start like a pointer and fit the size cap', async () => {
    const found: string[] = [];
    for await (const { oid, blob } of pointerCandidates([text, large, pointer, 'e'.repeat(40), pointer], { cwd: dir })) {
      found.push(oid);
      expect(blob.toString()).toMatch(/^git-tensor v1 opaque\n/);
    }
    expect(found).toEqual([pointer]);
    expect(MAX_POINTER_BYTES).toBeLessThan(300 << 20); // the e2e memory test relies on a file above the cap
  });
});
