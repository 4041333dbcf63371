// The addon's chunk batches (native/src/chunks.cc, native/src/codec.cc) against the TypeScript
// reference in src/store/encoding.ts: the same bytes out for every width, sign rotation and delta, and a
// decode that names the chunk whose content does not match its id.

import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { storeCodec } from '../../../src/store/codec.js';
import { chunkBatches, DecodeItem } from '../../../src/kernels/chunks.js';
import { BodyMode, joinSplitPlanes, splitPlanes } from '../../../src/store/encoding.js';

const batches = chunkBatches();
const codec = storeCodec();
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest();

const chunkCase = fc.constantFrom(1, 2, 4, 8).chain((width) => fc.record({
  width: fc.constant(width),
  rotate: fc.boolean(),
  delta: fc.boolean(),
  elements: fc.integer({ min: 0, max: 300 }),
  seed: fc.integer(),
}));

function bytes(n: number, seed: number): Uint8Array {
  let s = seed >>> 0;
  return Uint8Array.from({ length: n }, () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24);
}

describe.skipIf(!batches)('chunk batches in the addon', () => {
  it('hash with crcs also gives each piece\'s CRC-32, equal to zlib\'s at every length and alignment', async () => {
    // The addon folds with PCLMULQDQ from 64 bytes on (native/src/crc32.cc); Node's zlib.crc32 is an
    // independent table-driven implementation of the same CRC.
    const check = Buffer.from('123456789');
    const one = new Uint32Array(1);
    await batches!.hash(check, Uint32Array.of(check.length), one);
    expect(one[0]).toBe(0xcbf43926);
    const pool = Buffer.from(bytes(300_000, 11));
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 0, max: 15 }), fc.array(fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 300, max: 70_000 })), { minLength: 1, maxLength: 6 }),
      async (offset, lengths) => {
        const total = lengths.reduce((n, x) => n + x, 0);
        fc.pre(offset + total <= pool.length);
        const data = pool.subarray(offset, offset + total);
        const crcs = new Uint32Array(lengths.length);
        const digests = await batches!.hash(data, Uint32Array.from(lengths), crcs);
        let at = 0;
        lengths.forEach((n, k) => {
          const piece = data.subarray(at, (at += n));
          expect(crcs[k]).toBe(crc32(piece));
          expect(digests.subarray(32 * k, 32 * k + 32).equals(sha(piece))).toBe(true);
        });
      }), { numRuns: 150 });
  });

  it('hashStream gives the SHA-256 of the pieces fed to it in order, wherever they are cut', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 600_000 }), fc.array(fc.nat(), { maxLength: 5 }), fc.integer(), async (n, cuts, seed) => {
      const data = bytes(n, seed);
      const at = [...new Set(cuts.map((c) => c % (n + 1)))].sort((x, y) => x - y);
      const stream = batches!.hashStream();
      let from = 0;
      for (const c of [...at, n]) {
        await stream.update(data.subarray(from, c));
        from = c;
      }
      expect(stream.digest().equals(sha(data))).toBe(true);
    }), { numRuns: 25 });
  });

  it('readRaw reads pieces of files into consecutive parts of out, and names the piece that fails its CRC-32', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gt-readraw-'));
    try {
      const a = Buffer.from(bytes(300_000, 1));
      const b = Buffer.from(bytes(70_000, 2));
      writeFileSync(join(dir, 'a'), a);
      writeFileSync(join(dir, 'b'), b);
      const fa = openSync(join(dir, 'a'), 'r');
      const fb = openSync(join(dir, 'b'), 'r');
      try {
        const places = (crcB: number) => Float64Array.of(fa, 1000, 200_000, crc32(a.subarray(1000, 201_000)), fb, 5, 69_000, crcB, fa, 0, 7, crc32(a.subarray(0, 7)));
        const out = Buffer.alloc(200_000 + 69_000 + 7);
        await batches!.readRaw(places(crc32(b.subarray(5, 69_005))), out);
        expect(out.equals(Buffer.concat([a.subarray(1000, 201_000), b.subarray(5, 69_005), a.subarray(0, 7)]))).toBe(true);
        await expect(batches!.readRaw(places(crc32(b.subarray(5, 69_005)) ^ 1), out)).rejects.toThrow(/^chunk #1: fails the CRC-32/);
        // A piece past the end of its file is refused, never padded.
        await expect(batches!.readRaw(Float64Array.of(fb, 60_000, 20_000, 0), Buffer.alloc(20_000))).rejects.toThrow(/^chunk #0: the pack file ends inside it/);
      } finally {
        closeSync(fa);
        closeSync(fb);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hash gives the SHA-256 of each piece, in order', async () => {
    const data = bytes(200_000, 7);
    const lengths = [0, 1, 65536, 100_000, 200_000 - 165_537];
    const digests = await batches!.hash(data, Uint32Array.from(lengths));
    let at = 0;
    lengths.forEach((n, k) => {
      expect(digests.subarray(32 * k, 32 * k + 32).equals(sha(data.subarray(at, at + n)))).toBe(true);
      at += n;
    });
    expect(() => batches!.hash(data, Uint32Array.of(5))).toThrow(/do not add up/);
  });

  it.skipIf(!batches?.compressPlanes)('compressPlanes and decode agree with the TypeScript transforms', async () => {
    await fc.assert(fc.asyncProperty(fc.array(chunkCase, { minLength: 1, maxLength: 6 }), async (cases) => {
      const items = cases.map((c) => {
        const src = bytes(c.elements * c.width, c.seed);
        const base = c.delta ? bytes(src.length, c.seed ^ 0x5bd1e995) : null;
        return { c, src, base };
      });
      const zs = await batches!.compressPlanes!(items.map((it) => [it.src, it.c.width, it.c.rotate, it.base]), 1);
      zs.forEach((z, k) => {
        const { c, src, base } = items[k]!;
        // byte for byte what the TypeScript reference makes, and what the synchronous call makes
        expect(z.equals(Buffer.from(splitPlanes(src, c.width, c.rotate, base, codec.compressPlane!, 1)))).toBe(true);
        expect(z.equals(Buffer.from(codec.compressPlanes!(src, c.width, c.rotate, base, 1)))).toBe(true);
      });
      const decodeItems: DecodeItem[] = items.map((it, k) => [zs[k]!, BodyMode.split, it.src.length, it.c.width, it.c.rotate, it.base, sha(it.src)]);
      const out = Buffer.alloc(items.reduce((n, it) => n + it.src.length, 0));
      await batches!.decode!(decodeItems, out);
      expect(out.equals(Buffer.concat(items.map((it) => it.src)))).toBe(true);
      // and the TypeScript inverse reads what the addon wrote
      items.forEach(({ c, src, base }, k) => {
        const back = joinSplitPlanes('x', zs[k]!, src.length, c.width, c.rotate, base, codec.decompress);
        expect(Buffer.from(back).equals(Buffer.from(src))).toBe(true);
      });
    }), { numRuns: 60 });
  });

  it.skipIf(!batches?.decode)('decode names the chunk whose bytes do not hash to its id', async () => {
    const good = bytes(4096, 1);
    const bad = bytes(4096, 2);
    const wrongId = sha(bytes(4096, 3));
    const out = Buffer.alloc(8192);
    await expect(batches!.decode!([[good, BodyMode.raw, 4096, 1, false, null, sha(good)], [bad, BodyMode.raw, 4096, 1, false, null, wrongId]], out))
      .rejects.toThrow(new RegExp(`chunk ${wrongId.toString('hex').slice(0, 16)}: content hashes to ${sha(bad).toString('hex').slice(0, 16)}`));
    const z = (await batches!.compressPlanes!([[good, 4, true, null]], 1))[0]!;
    const truncated = z.subarray(0, z.length - 3);
    await expect(batches!.decode!([[truncated, BodyMode.split, 4096, 4, true, null, sha(good)]], Buffer.alloc(4096)))
      .rejects.toThrow(new RegExp(`chunk ${sha(good).toString('hex').slice(0, 16)}: plane 3`));
  });

  it.skipIf(!batches?.decode)('decodes a delta chain given as nested items, and rejects a chain with the wrong base', async () => {
    const v0 = bytes(8192, 11);
    const v1 = Uint8Array.from(v0, (x, i) => (i % 97 === 0 ? x ^ 1 : x));
    const v2 = Uint8Array.from(v1, (x, i) => (i % 89 === 0 ? x ^ 2 : x));
    const [z0, z1, z2] = await batches!.compressPlanes!([[v0, 4, true, null], [v1, 4, false, v0], [v2, 4, false, v1]], 1);
    const item0: DecodeItem = [z0!, BodyMode.split, v0.length, 4, true, null, sha(v0)];
    const item1: DecodeItem = [z1!, BodyMode.split, v1.length, 4, false, item0, sha(v1)];
    const item2: DecodeItem = [z2!, BodyMode.split, v2.length, 4, false, item1, sha(v2)];
    const out = Buffer.alloc(v2.length);
    await batches!.decode!([item2], out);
    expect(out.equals(Buffer.from(v2))).toBe(true);
    const wrongBase: DecodeItem = [z2!, BodyMode.split, v2.length, 4, false, item0, sha(v2)];
    await expect(batches!.decode!([wrongBase], out)).rejects.toThrow(/content hashes to/);
  });

  it('checks its arguments before running', async () => {
    expect(() => batches!.hash(new Uint8Array(4), [4] as unknown as Uint32Array)).toThrow(/Uint32Array/);
    expect(() => batches!.compressPlanes?.([[new Uint8Array(6), 4, false, null]], 1)).toThrow(/whole number of elements/);
    expect(() => batches!.decode?.([[new Uint8Array(4), BodyMode.raw, 4, 1, false, null, new Uint8Array(3)]], Buffer.alloc(4))).toThrow(/32 bytes/);
    expect(() => batches!.decode?.([[new Uint8Array(4), 7, 4, 1, false, null, new Uint8Array(32)]], Buffer.alloc(4))).toThrow(/unknown body mode/);
  });
});
