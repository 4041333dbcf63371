// Known answers for the kernels, worked out by hand from the definitions in docs/kernels.md. They run
// on every implementation, so they pin down the TypeScript reference that the other tests trust.

import { describe, expect, test } from 'vitest';

import {
  average, classify3, dare, fromF32, matvec, slerp, spectralNorm, taskArithmetic, ties, toF32,
} from '../../src/kernels/index.js';
import { dareKeep, dareStream, f32BitsToBf16, f32BitsToF16, mix64 } from '../../src/kernels/reference.js';
import { IMPLEMENTATIONS, rng } from './helpers.js';

const f32 = (...v: number[]) => new Float32Array(v);
const bits = (x: number) => new Uint32Array(f32(x).buffer)[0]!;
const values = (b: Uint8Array) => Array.from(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));

describe('rounding to F16 and BF16', () => {
  test.each([
    [1, 0x3c00], [-0, 0x8000], [65504, 0x7bff], [65519.99, 0x7bff], [65520, 0x7c00], [Infinity, 0x7c00],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [2 ** -14, 0x0400],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [-2.5, 0xc100],
  ])('F16(%d) = %i', (x, h) => {
    expect(f32BitsToF16(bits(x))).toBe(h);
  });

  test.each([
    [1, 0x3f80], [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [-0, 0x8000], [3.4028234663852886e38, 0x7f80],
  ])('BF16(%d) = %i', (x, h) => {
    expect(f32BitsToBf16(bits(x))).toBe(h);
  });

  test('NaNs stay NaN, with the quiet bit set', () => {
    expect(f32BitsToF16(0x7f800001)).toBe(0x7e00);
    expect(f32BitsToBf16(0x7f800001)).toBe(0x7fc0);
    expect(f32BitsToBf16(0xff800001)).toBe(0xffc0);
  });

  test.each(IMPLEMENTATIONS)('%s: F16 round trip of known values', async (implementation) => {
    const h = await fromF32(f32(1, 65520, 2 ** -25, 1 + 2 ** -11), 'F16', undefined, { implementation });
    expect(Array.from(new Uint16Array(h.buffer))).toEqual([0x3c00, 0x7c00, 0, 0x3c00]);
    expect(Array.from(await toF32(h, 'F16', undefined, { implementation }))).toEqual([1, Infinity, 0, 1]);
  });
});

describe('the DARE PRNG', () => {
  test('mix64 is SplitMix64: the first output for seed 0 is 0xe220a8397b1dcdaf', () => {
    expect(mix64(0x9e3779b97f4a7c15n)).toBe(0xe220a8397b1dcdafn);
  });

  test('agrees with a BigInt SplitMix64', () => {
    const G = 0x9e3779b97f4a7c15n, M = (1n << 64n) - 1n;
    const mix = (z: bigint) => {
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
      return z ^ (z >> 31n);
    };
    const seed = 0xfeedfacecafebeefn;
    for (const model of [0, 1, 7]) {
      const key = mix((seed + G * BigInt(model + 1)) & M);
      const [hi, lo] = dareStream(seed, model);
      expect((BigInt(hi) << 32n) | BigInt(lo)).toBe(key);
      for (const j of [0, 1, 2 ** 32 + 5, 2 ** 40 + 3]) {
        const r = mix((key + G * BigInt(j + 1)) & M);
        const keepBelow = 2 ** 52; // density 0.5
        expect(dareKeep([hi, lo], j, keepBelow)).toBe(r >> 11n < BigInt(keepBelow));
      }
    }
  });

  test('keeps a `density` fraction of elements', () => {
    const stream = dareStream(42n, 0);
    let kept = 0;
    for (let j = 0; j < 100_000; j++) if (dareKeep(stream, j, Math.floor(0.3 * 2 ** 53))) kept++;
    expect(Math.abs(kept / 100_000 - 0.3)).toBeLessThan(0.01);
  });
});

describe.each(IMPLEMENTATIONS)('%s', (implementation) => {
  const opts = { implementation };

  test('classify3 on a hand-made example', async () => {
    //            j0  j1  j2  j3  j4  j5   j6
    const o = f32(1, 1, 1, 1, 1, -0, NaN);
    const a = f32(1, 2, 3, 0, 1, 0, NaN);
    const b = f32(1, 3, 3, 2, 0, NaN, 1);
    const { counts, masks } = await classify3(o, a, b, 'F32', opts);
    expect(counts).toEqual({ changedA: 4, changedB: 6, same: 1, conflict: 3, signConflict: 1 });
    expect([masks.changedA[0], masks.changedB[0], masks.same[0], masks.conflict[0], masks.signConflict[0]])
      .toEqual([0x2e, 0x7e, 0x04, 0x2a, 0x08]);
  });

  test('taskArithmetic and average', async () => {
    const base = f32(1, 2), m1 = f32(2, 4), m2 = f32(0, 0);
    expect(values(await taskArithmetic({ base, models: [m1, m2], weights: [1, 0.5], dtype: 'F32' }, opts))).toEqual([1.5, 3]);
    expect(values(await average({ models: [f32(1, 3), f32(3, 5)], dtype: 'F32' }, opts))).toEqual([2, 4]);
    expect(values(await average({ models: [f32(1, 3), f32(3, 5)], weights: [1, 3], dtype: 'F32' }, opts))).toEqual([2.5, 4.5]);
  });

  test('ties: trim to the top k, elect the sign, average the agreeing deltas', async () => {
    const base = f32(10, 20, -0, 5);
    const m1 = f32(11, 18, 0.5, 5); // deltas 1, -2, 0.5, 0: keeps 1 and -2
    const m2 = f32(7, 21, 0.25, 5); // deltas -3, 1, 0.25, 0: keeps -3 and 1
    const out = await ties({ base, models: [m1, m2], density: 0.5, lambda: 1, dtype: 'F32' }, opts);
    expect(values(out)).toEqual([7, 18, -0, 5]);
    expect(Object.is(values(out)[2], -0)).toBe(true); // no kept delta: the base's bits
    const half = await ties({ base, models: [m1, m2], density: 0.5, lambda: 0.5, dtype: 'F32' }, opts);
    expect(values(half)).toEqual([8.5, 19, -0, 5]);
  });

  test('ties written over its own base in a Node Buffer keeps the base\'s bits where no delta is kept', async () => {
    // The merge driver's tensor buffers are Buffers, whose slice() is a view, not a copy: the base must
    // still be read from a real copy when the result overwrites it.
    const asBuffer = (x: Float32Array) => Buffer.from(new Uint8Array(x.buffer).slice());
    const base = f32(10, 20, -0, 5), m1 = f32(11, 18, 0.5, 5), m2 = f32(7, 21, 0.25, 5);
    const inPlace = asBuffer(base);
    await ties({ base: inPlace, models: [asBuffer(m1), asBuffer(m2)], density: 0.5, lambda: 1, dtype: 'F32', out: inPlace }, opts);
    expect(values(inPlace)).toEqual([7, 18, -0, 5]);
    expect(Object.is(values(inPlace)[2], -0)).toBe(true);
  });

  test('dare written over its own base in a Node Buffer keeps the base\'s bits where it drops every delta', async () => {
    const asBuffer = (x: Float32Array) => Buffer.from(new Uint8Array(x.buffer).slice());
    // A dropped delta keeps the base's bits, here -0 (o + 0 would be +0).
    const zeros = asBuffer(new Float32Array(64).fill(-0));
    await dare({ base: zeros, models: [asBuffer(new Float32Array(64).fill(1))], density: 0.5, seed: 3, dtype: 'F32', out: zeros }, opts);
    const got = values(zeros);
    expect(got.every((x) => Object.is(x, -0) || x === 2), got.join(' ')).toBe(true);
    expect(got.filter((x) => Object.is(x, -0)).length).toBeGreaterThan(10);
  });

  test('dare with density 1 is task arithmetic; density 0.5 rescales the kept deltas by 2', async () => {
    const next = rng(9);
    const base = new Float32Array(1000).map(() => next()), model = base.map((x) => x + 0.25);
    const all = await dare({ base, models: [model], density: 1, seed: 1, dtype: 'F32' }, opts);
    expect(values(all)).toEqual(values(await taskArithmetic({ base, models: [model], dtype: 'F32' }, opts)));
    const half = values(await dare({ base, models: [model], density: 0.5, seed: 1, dtype: 'F32' }, opts));
    const kept = half.filter((x, j) => x !== base[j]);
    const r = Math.fround;
    half.forEach((x, j) => expect([base[j], r(base[j]! + r(2 * r(model[j]! - base[j]!)))]).toContain(x));
    expect(Math.abs(kept.length - 500)).toBeLessThan(60);
  });

  test('slerp of orthogonal unit vectors, and of parallel ones', async () => {
    const mid = values(await slerp({ a: f32(1, 0), b: f32(0, 1), t: 0.5, dtype: 'F32' }, opts));
    expect(mid[0]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(mid[1]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(values(await slerp({ a: f32(1, 2), b: f32(2, 4), t: 0.25, dtype: 'F32' }, opts))).toEqual([1.25, 2.5]);
  });

  test('matvec and spectralNorm', async () => {
    const m = f32(1, 2, 3, 4);
    expect(Array.from(await matvec({ matrix: m, rows: 2, cols: 2, dtype: 'F32', x: new Float64Array([1, 1]) }, opts))).toEqual([3, 7]);
    expect(Array.from(await matvec({ matrix: m, rows: 2, cols: 2, dtype: 'F32', x: new Float64Array([1, 1]), transpose: true }, opts))).toEqual([4, 6]);
    expect(await spectralNorm({ matrix: f32(3, 0, 0, 1), rows: 2, cols: 2, dtype: 'F32' }, opts)).toBeCloseTo(3, 5);
    // rank one: u v^T has spectral norm |u| |v|
    const u = [1, 2, 2], v = [3, 4];
    const outer = f32(...u.flatMap((x) => v.map((y) => x * y)));
    expect(await spectralNorm({ matrix: outer, rows: 3, cols: 2, dtype: 'F32' }, opts)).toBeCloseTo(15, 5);
  });
});
