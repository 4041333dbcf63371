// Chunk encodings: every transform round-trips exactly, compression is chosen only when it pays, delta
// chains stay bounded, and a store written with native zstd reads back through the JavaScript decoder.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { decompress as jsDecompress } from 'fzstd';
import { storeCodec, type Codec } from '../../../src/store/codec.js';
import {
  applyZigzagDelta, ChunkEncoding, decodeChunk, encodeChunk, fromPlanes, MAX_DELTA_DEPTH, rotateSign, toPlanes, zigzagDelta,
} from '../../../src/store/encoding.js';
import { ObjectStore, sha256 } from '../../../src/store/store.js';

const codec = storeCodec();
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Weights as a training run has them: normal-ish values of scale 0.02, as F32 bytes. */
function weights(n: number, seed: number): Float32Array {
  let s = seed;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Float32Array.from({ length: n }, () => (next() + next() + next() - 1.5) * 0.03);
}
const bytesOf = (f: Float32Array) => new Uint8Array(f.buffer);

describe('transforms are exact inverses', () => {
  it('planes, sign rotation and zigzag deltas round-trip for every width', () => {
    fc.assert(fc.property(fc.constantFrom(1, 2, 4, 8), fc.uint8Array({ maxLength: 512 }), fc.uint8Array({ maxLength: 512 }), (width, a, b) => {
      const n = Math.floor(Math.min(a.length, b.length) / width) * width;
      const x = a.slice(0, n);
      const y = b.slice(0, n);
      expect(fromPlanes(toPlanes(x, width), width)).toEqual(x);
      expect(fromPlanes(toPlanes(x, width, true), width, true)).toEqual(x);
      if (width > 1) {
        expect(rotateSign(rotateSign(x, width), width, true)).toEqual(x);
        // the word-at-a-time fast paths agree with the byte-wise definition, aligned or not
        expect(toPlanes(x, width, true)).toEqual(toPlanes(rotateSign(x, width), width));
        const unaligned = new Uint8Array(n + 1);
        unaligned.set(x, 1);
        expect(toPlanes(unaligned.subarray(1), width, true)).toEqual(toPlanes(x, width, true));
      }
      expect(applyZigzagDelta(zigzagDelta(x, y, width), y, width)).toEqual(x);
    }), { seed: 42, numRuns: 300 });
  });

  it('rotating the sign out leaves the F32 exponent alone in the top byte', () => {
    const f = Float32Array.of(-1.5, 1.5);
    const r = rotateSign(bytesOf(f), 4);
    expect(r[3]).toBe(127); // exponent of 1.5, for either sign
    expect(r[7]).toBe(127);
    expect(r[0]! & 1).toBe(1); // the sign of -1.5, now the lowest bit
    expect(r[4]! & 1).toBe(0);
  });

  it('a small update gives a delta whose high planes are zero', () => {
    const w = weights(4096, 1);
    const u = w.map((x, i) => (i % 3 === 0 ? x * (1 + 1e-4) : x));
    const planes = toPlanes(zigzagDelta(bytesOf(u), bytesOf(w), 4), 4);
    expect(planes.subarray(3 * 4096).every((b) => b === 0)).toBe(true);
  });
});

describe.skipIf(!codec.compress)('encodeChunk with native zstd', () => {
  const c = codec as Codec;

  it('compresses float weights below raw and decodes them exactly', () => {
    const chunk = bytesOf(weights(16384, 2));
    const e = encodeChunk(chunk, { width: 4, float: true }, c)!;
    expect(e.encoding).toBe(ChunkEncoding.planes);
    expect(e.payload.length).toBeLessThan(chunk.length * 0.95);
    const id = sha256(chunk).toString('hex');
    expect(Buffer.from(decodeChunk(id, e.encoding, e.payload, chunk.length, c, () => new Uint8Array())).equals(Buffer.from(chunk))).toBe(true);
  });

  it('keeps random bytes raw (compression would not pay)', () => {
    const chunk = new Uint8Array(65536).map(() => Math.floor(Math.random() * 256));
    expect(encodeChunk(chunk, { width: 1 }, c)).toBeNull();
  });

  it('deltas against a related chunk, and stops at the chain limit', () => {
    const base = bytesOf(weights(16384, 3));
    const next = bytesOf(new Float32Array(new Float32Array(base.buffer).map((x) => x * (1 + 1e-3))));
    const d = encodeChunk(next, { width: 4, float: true, base: { id: sha256(base), bytes: base, depth: 0 } }, c)!;
    expect(d.encoding).toBe(ChunkEncoding.deltaPlanes);
    expect(d.depth).toBe(1);
    const out = decodeChunk('x', d.encoding, d.payload, next.length, c, () => base);
    expect(Buffer.from(out).equals(Buffer.from(next))).toBe(true);
    const deep = encodeChunk(next, { width: 4, float: true, base: { id: sha256(base), bytes: base, depth: MAX_DELTA_DEPTH } }, c)!;
    expect(deep.encoding).toBe(ChunkEncoding.planes);
  });

  it('stores the noise planes of floats raw and compresses the exponent plane (split planes)', () => {
    const chunk = bytesOf(weights(16384, 4));
    const e = encodeChunk(chunk, { width: 4, float: true }, c)!;
    const body = Buffer.from(e.payload.subarray(2));
    const modes: number[] = [];
    for (let at = 0; at < body.length; at += 5 + body.readUInt32LE(at + 1)) modes.push(body[at]!);
    expect(modes).toHaveLength(4);
    expect(modes.slice(0, 2)).toEqual([0, 0]); // the low mantissa bytes are noise: kept raw
    expect(modes[3]).toBe(1); // the exponent (sign rotated out) compresses
  });

  it('reads chunks written by earlier versions: one zstd frame for all planes (encodings 2, 3 and 4)', () => {
    const chunk = bytesOf(weights(4096, 5));
    const base = bytesOf(weights(4096, 6));
    const id = sha256(chunk).toString('hex');
    const joined = Buffer.concat([Uint8Array.of(4, 1), c.compress!(toPlanes(chunk, 4, true), 3)]);
    expect(Buffer.from(decodeChunk(id, ChunkEncoding.planesZstd, joined, chunk.length, c, () => base)).equals(Buffer.from(chunk))).toBe(true);
    const delta = Buffer.concat([sha256(base), Uint8Array.of(4), c.compress!(toPlanes(zigzagDelta(chunk, base, 4), 4), 3)]);
    expect(Buffer.from(decodeChunk(id, ChunkEncoding.deltaPlanesZstd, delta, chunk.length, c, () => base)).equals(Buffer.from(chunk))).toBe(true);
    expect(Buffer.from(decodeChunk(id, ChunkEncoding.zstd, c.compress!(chunk, 3), chunk.length, c, () => base)).equals(Buffer.from(chunk))).toBe(true);
  });

  it('names the chunk when a split-planes payload is damaged, in the addon and in TypeScript', () => {
    const chunk = bytesOf(weights(4096, 7));
    const e = encodeChunk(chunk, { width: 4, float: true }, c)!;
    const jsOnly: Codec = { compress: null, decompress: (src, size) => jsDecompress(src, new Uint8Array(size)) };
    for (const damaged of [e.payload.subarray(0, e.payload.length - 1), Buffer.concat([e.payload, Uint8Array.of(0)])]) {
      for (const reader of [c, jsOnly]) {
        expect(() => decodeChunk('c0ffee', e.encoding, damaged, chunk.length, reader, () => new Uint8Array()))
          .toThrow(expect.objectContaining({ code: 'E_CORRUPT_OBJECT' }));
      }
    }
  });

  it('a store written with native zstd reads back through the JavaScript decoder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gt-enc-'));
    dirs.push(dir);
    const writer = ObjectStore.open(dir, { codec: c, compressOnWrite: true }).beginWrite();
    const chunks = [0, 1, 2].map((k) => bytesOf(weights(16384, 10 + k)));
    const ids = (await writer.putChunks(Buffer.concat(chunks), chunks.map((c) => c.length), { width: 4, float: true })).map((id) => id.toString('hex'));
    writer.commit();
    const jsOnly: Codec = { compress: null, decompress: (src, size) => jsDecompress(src, new Uint8Array(size)) };
    const reader = ObjectStore.open(dir, { codec: jsOnly });
    ids.forEach((id, k) => {
      expect(reader.locate(id)!.encoding).toBe(ChunkEncoding.planes);
      expect(reader.read(id).equals(Buffer.from(chunks[k]!))).toBe(true);
    });
  });
});
