import { createCipheriv, createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DTYPES, dtypeBits } from '../../../src/format/dtype.js';
import { CDC_MAX, CDC_MIN, GearChunker, TARGET_CHUNK_BYTES, tensorChunkBytes } from '../../../src/store/chunking.js';

const KiB = 1024;

/** Deterministic pseudo-random bytes (AES-CTR keystream of the seed). */
function noise(seed: string, n: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** Cut offsets of `data` fed to one chunker in the given pieces. */
function cutsOf(data: Buffer, splitAt: readonly number[] = []): number[] {
  const chunker = new GearChunker();
  const cuts: number[] = [];
  let from = 0;
  for (const at of [...splitAt, data.length]) {
    cuts.push(...chunker.push(data.subarray(from, at)));
    from = at;
  }
  return cuts;
}

/** The chunks (as content hashes) that the cut points make, the last one ending at end of input. */
function chunkIds(data: Buffer): string[] {
  const ends = [...cutsOf(data).filter((c) => c < data.length), data.length];
  let from = 0;
  return ends.map((end) => {
    const id = createHash('sha256').update(data.subarray(from, end)).digest('hex');
    from = end;
    return id;
  });
}

function lengths(cuts: number[], total: number): number[] {
  const ends = [...cuts.filter((c) => c < total), total];
  return ends.map((e, k) => e - (k === 0 ? 0 : ends[k - 1]!));
}

// ---------------------------------------------------------------------------------------------------

describe('tensorChunkBytes', () => {
  it('cuts 2-D tensors at whole rows, as many rows as fit in 64 KiB', () => {
    // F32 [1000, 100]: 400-byte rows, 163 of them fit.
    expect(tensorChunkBytes(32, [1000, 100])).toBe(163 * 400);
    // BF16 [50000, 4096]: 8 KiB rows, exactly 8 of them.
    expect(tensorChunkBytes(16, [50000, 4096])).toBe(64 * KiB);
    // F64 [10, 3]: 24-byte rows.
    expect(tensorChunkBytes(64, [10, 3])).toBe(2730 * 24);
    // A row of exactly 64 KiB is one chunk.
    expect(tensorChunkBytes(8, [7, 64 * KiB])).toBe(64 * KiB);
  });

  it('treats everything after the first dimension as the row (3-D and 4-D)', () => {
    // F16 [8, 3, 100]: rows of 300 elements = 600 bytes.
    expect(tensorChunkBytes(16, [8, 3, 100])).toBe(Math.floor(65536 / 600) * 600);
    // F32 conv weight [64, 3, 7, 7]: rows of 147 elements = 588 bytes.
    expect(tensorChunkBytes(32, [64, 3, 7, 7])).toBe(Math.floor(65536 / 588) * 588);
  });

  it('falls back to whole elements when one row is larger than 64 KiB', () => {
    expect(tensorChunkBytes(32, [10, 20000])).toBe(64 * KiB);
    expect(tensorChunkBytes(64, [2, 10000])).toBe(64 * KiB);
    expect(tensorChunkBytes(8, [2, 64 * KiB + 1])).toBe(64 * KiB);
  });

  it('cuts 1-D tensors and scalars at whole elements', () => {
    for (const bits of [8, 16, 32, 64]) {
      expect(tensorChunkBytes(bits, [1_000_000])).toBe(64 * KiB);
      expect(tensorChunkBytes(bits, [])).toBe(64 * KiB);
    }
  });

  it('keeps sub-byte elements whole: F4 at byte (2-element) and F6 at 3-byte (4-element) boundaries', () => {
    expect(tensorChunkBytes(4, [1_000_000])).toBe(64 * KiB);
    const f6 = tensorChunkBytes(6, [1_000_000]);
    expect(f6 % 3).toBe(0);
    expect(f6).toBe(65535);
    // F6 rows of 8 elements are 6 whole bytes: row-aligned and element-aligned.
    expect(tensorChunkBytes(6, [100_000, 8])).toBe(Math.floor(65536 / 6) * 6);
    // F6 rows of 2 elements are 12 bits: rows cannot be whole bytes, so whole 4-element groups.
    expect(tensorChunkBytes(6, [100_000, 2]) % 3).toBe(0);
    // F4 rows of 3 elements are 12 bits: whole bytes (2 elements each).
    expect(tensorChunkBytes(4, [100_000, 3])).toBe(64 * KiB);
  });

  it('handles zero-size rows without dividing by zero', () => {
    expect(tensorChunkBytes(32, [10, 0])).toBe(64 * KiB);
    expect(tensorChunkBytes(32, [0, 10])).toBe(Math.floor(65536 / 40) * 40);
  });

  it('for every dtype and shape: whole elements, whole rows when a row fits, never above 64 KiB (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...DTYPES), fc.array(fc.integer({ min: 0, max: 70_000 }), { maxLength: 4 }), (dtype, shape) => {
        const bits = dtypeBits(dtype);
        const n = tensorChunkBytes(bits, shape);
        expect(Number.isInteger(n) && n > 0).toBe(true);
        expect((n * 8) % bits).toBe(0); // whole elements
        expect(n).toBeLessThanOrEqual(TARGET_CHUNK_BYTES);
        const rowBits = shape.slice(1).reduce((a, b) => a * b, 1) * bits;
        if (shape.length >= 2 && rowBits > 0 && rowBits % 8 === 0 && rowBits / 8 <= TARGET_CHUNK_BYTES) {
          expect(n % (rowBits / 8)).toBe(0); // whole rows
          expect(n + rowBits / 8).toBeGreaterThan(TARGET_CHUNK_BYTES); // as many as fit
        } else {
          const unit = bits % 8 === 0 ? bits / 8 : bits === 4 ? 1 : 3;
          expect(n + unit).toBeGreaterThan(TARGET_CHUNK_BYTES); // as many elements as fit
        }
      }),
      { seed: 5, numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------

describe('GearChunker', () => {
  const RANDOM = noise('gear', 2 * 1024 * KiB);

  it('finds the same cut points however the input is split into pushes (property)', () => {
    const data = RANDOM.subarray(0, 700 * KiB);
    const whole = cutsOf(data);
    expect(whole.length).toBeGreaterThan(3);
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: data.length }), { maxLength: 40 }), (points) => {
        expect(cutsOf(data, [...points].sort((a, b) => a - b))).toEqual(whole);
      }),
      { seed: 11, numRuns: 40 },
    );
    // The extreme: one byte at a time around the first cut.
    const first = whole[0]!;
    const near = Array.from({ length: 200 }, (_, k) => first - 100 + k);
    expect(cutsOf(data, near)).toEqual(whole);
  });

  it('reports cut offsets from the start of the stream, increasing', () => {
    const chunker = new GearChunker();
    const all: number[] = [];
    for (let at = 0; at < RANDOM.length; at += 100_000) {
      const cuts = chunker.push(RANDOM.subarray(at, at + 100_000));
      for (const c of cuts) {
        expect(c).toBeGreaterThan(at);
        expect(c).toBeLessThanOrEqual(Math.min(at + 100_000, RANDOM.length));
      }
      all.push(...cuts);
    }
    expect([...all].sort((a, b) => a - b)).toEqual(all);
  });

  it('keeps every chunk but the last within [16 KiB, 256 KiB], on random data', () => {
    const sizes = lengths(cutsOf(RANDOM), RANDOM.length);
    for (const s of sizes.slice(0, -1)) {
      expect(s).toBeGreaterThanOrEqual(CDC_MIN);
      expect(s).toBeLessThanOrEqual(CDC_MAX);
    }
    expect(sizes.at(-1)!).toBeLessThanOrEqual(CDC_MAX);
    // Content decides: the average is far from both bounds (16 KiB min + ~64 KiB expected gap).
    const mean = RANDOM.length / sizes.length;
    expect(mean).toBeGreaterThan(40 * KiB);
    expect(mean).toBeLessThan(160 * KiB);
  });

  it('enforces the 256 KiB maximum on data without content boundaries (all zeros)', () => {
    const zeros = Buffer.alloc(1024 * KiB + 5);
    const sizes = lengths(cutsOf(zeros), zeros.length);
    expect(sizes.length).toBeGreaterThanOrEqual(Math.ceil(zeros.length / CDC_MAX));
    for (const s of sizes.slice(0, -1)) {
      expect(s).toBeGreaterThanOrEqual(CDC_MIN);
      expect(s).toBeLessThanOrEqual(CDC_MAX);
    }
  });

  it('an insertion of a few bytes near the start changes only the first one or two chunks', () => {
    const before = chunkIds(RANDOM);
    expect(before.length).toBeGreaterThan(10);
    for (const [offset, inserted] of [[100, 'x'], [5000, 'hello'], [20_000, '\0\0\0'], [0, 'ab']] as const) {
      const after = chunkIds(Buffer.concat([RANDOM.subarray(0, offset), Buffer.from(inserted), RANDOM.subarray(offset)]));
      const old = new Set(before);
      const changed = after.map((id, k) => (old.has(id) ? -1 : k)).filter((k) => k >= 0);
      expect(changed.length, `insert at ${offset}`).toBeGreaterThanOrEqual(1);
      expect(Math.max(...changed), `insert at ${offset}`).toBeLessThan(2);
      // Everything after them is the old sequence, in order.
      const tail = after.slice(Math.max(...changed) + 1);
      expect(tail).toEqual(before.slice(before.length - tail.length));
      expect(tail.length).toBeGreaterThan(before.length - 3);
    }
  });

  it('is deterministic across chunker instances (the cut points are part of the dedup contract)', () => {
    const data = RANDOM.subarray(0, 300 * KiB);
    expect(cutsOf(data)).toEqual(cutsOf(Buffer.from(data)));
    expect(new GearChunker().push(Buffer.alloc(0))).toEqual([]);
  });
});
