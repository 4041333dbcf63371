// matmul (y = x W^T + bias, nn.Linear's layout) in every implementation this machine supports against
// the TypeScript reference, which sums in f64: odd shapes around the native tiles (6-row strips,
// 64-column panels, 128-input blocks, 768-row blocks), unaligned subarray views, with and without
// bias, one and two threads. The reference itself is checked on a product small enough to do by hand.
// F16/BF16 weights (the engine holds half-precision checkpoints as stored): bit for bit the product with
// the weights widened to F32 first, in every implementation, and within tolerance of the reference.

import { describe, expect, test } from 'vitest';

import { matmul, toF32, type RunOptions, type Weights } from '../../src/kernels/index.js';
import { IMPLEMENTATIONS, randomTensor, rng } from './helpers.js';

/**
 * Native kernels sum the n = inDim products in f32 (fused multiply-add, any order), the reference in
 * f64: by Higham's bound the f32 sum is off by at most gamma_n = n 2^-24 / (1 - n 2^-24) times
 * sum |x_i w_i| + |bias|, plus half an ulp for the reference's own rounding to f32. inDim <= 300 here:
 * gamma_301 < 1.8e-5.
 */
const MATMUL_REL_TOL = 2e-5;

/** Shapes around the kernels' blocking: rows across 6-row strips, inDim across 16 lanes and 128-input blocks. */
const ROWS = [1, 3, 17, 50];
const IN_DIMS = [1, 15, 37, 129, 300];
const OUT_DIMS = [1, 7, 64, 65, 130];

function randomF32(n: number, next: () => number): Float32Array {
  return Float32Array.from({ length: n }, () => (next() - 0.5) * 4);
}

/** A copy of `a` that is a view at `offset` elements into a larger buffer (not 64-byte aligned). */
function unaligned(a: Float32Array, offset: number): Float32Array {
  const big = new Float32Array(a.length + offset + 5).fill(Number.NaN);
  big.set(a, offset);
  return big.subarray(offset, offset + a.length);
}

interface Problem {
  x: Float32Array;
  w: Float32Array;
  bias?: Float32Array;
  rows: number;
  inDim: number;
  outDim: number;
}

function problem(rows: number, inDim: number, outDim: number, withBias: boolean, next: () => number): Problem {
  return {
    x: randomF32(rows * inDim, next), w: randomF32(outDim * inDim, next),
    bias: withBias ? randomF32(outDim, next) : undefined, rows, inDim, outDim,
  };
}

/** sum_i |x_ri w_oi| + |bias_o|: the scale of each output's rounding error. */
function magnitudes(p: Problem): Float64Array {
  const m = new Float64Array(p.rows * p.outDim);
  for (let r = 0; r < p.rows; r++) {
    for (let o = 0; o < p.outDim; o++) {
      let s = p.bias ? Math.abs(p.bias[o]!) : 0;
      for (let i = 0; i < p.inDim; i++) s += Math.abs(p.x[r * p.inDim + i]! * p.w[o * p.inDim + i]!);
      m[r * p.outDim + o] = s;
    }
  }
  return m;
}

/** The first output outside the tolerance, as a message, or null. */
function mismatch(got: Float32Array, want: Float32Array, scale: Float64Array, what: string): string | null {
  for (let j = 0; j < want.length; j++) {
    const err = Math.abs(got[j]! - want[j]!);
    if (!(err <= MATMUL_REL_TOL * scale[j]! + 1e-30)) return `${what}: element ${j} is ${got[j]}, reference ${want[j]} (scale ${scale[j]})`;
  }
  return null;
}

async function check(p: Problem, opts: RunOptions, offset: number, what: string): Promise<void> {
  const want = await matmul(p, { implementation: 'js' });
  const scale = magnitudes(p);
  const out = unaligned(new Float32Array(p.rows * p.outDim), offset + 2);
  const args = {
    ...p, x: unaligned(p.x, offset), w: unaligned(p.w, offset + 1), bias: p.bias && unaligned(p.bias, offset + 3), out,
  };
  const got = await matmul(args, opts);
  expect(got).toBe(out);
  expect(mismatch(got, want, scale, what)).toBeNull();
}

describe.each(IMPLEMENTATIONS)('matmul with %s', (implementation) => {
  test('odd shapes, unaligned views, with and without bias: within MATMUL_REL_TOL of the reference', async () => {
    const next = rng(12);
    let offset = 0;
    for (const rows of ROWS) {
      for (const inDim of IN_DIMS) {
        for (const outDim of OUT_DIMS) {
          for (const withBias of [true, false]) {
            const p = problem(rows, inDim, outDim, withBias, next);
            await check(p, { implementation }, offset++ % 7, `${rows}x${inDim} -> ${outDim}${withBias ? ' +bias' : ''}`);
          }
        }
      }
    }
  });

  test('several row blocks and column tiles on two threads: within tolerance, and bit for bit the one-thread result', async () => {
    const next = rng(13);
    const p = problem(1543, 40, 195, true, next);
    await check(p, { implementation, threads: 2 }, 1, '1543x40 -> 195');
    const one = await matmul(p, { implementation, threads: 1 });
    const two = await matmul(p, { implementation, threads: 2 });
    expect(Buffer.from(two.buffer).equals(Buffer.from(one.buffer))).toBe(true);
  });

  test('inDim 0 gives the bias; rows 0 gives nothing', async () => {
    const bias = Float32Array.of(1.5, -2, 0);
    const got = await matmul({ x: new Float32Array(0), w: new Float32Array(0), bias, rows: 2, inDim: 0, outDim: 3 }, { implementation });
    expect([...got]).toEqual([1.5, -2, 0, 1.5, -2, 0]);
    const none = await matmul({ x: new Float32Array(0), w: new Float32Array(12), rows: 0, inDim: 4, outDim: 3 }, { implementation });
    expect(none.length).toBe(0);
  });

  test('a NaN in one input row makes exactly that output row NaN', async () => {
    const next = rng(14);
    const p = problem(9, 70, 67, true, next);
    p.x[4 * 70 + 33] = Number.NaN;
    const got = await matmul(p, { implementation });
    for (let r = 0; r < 9; r++) {
      const row = [...got.subarray(r * 67, (r + 1) * 67)];
      expect(row.every((v) => (r === 4 ? Number.isNaN(v) : Number.isFinite(v))), `row ${r}`).toBe(true);
    }
  });

  test('a product small enough to check by hand comes out exactly', async () => {
    // x = [1 2 3; -1 0 0.5], W = [1 0 0; 0 1 0; 1 1 1; 0.25 0 -2], bias = [0.5 0 -1 8]
    const x = Float32Array.of(1, 2, 3, -1, 0, 0.5);
    const w = Float32Array.of(1, 0, 0, 0, 1, 0, 1, 1, 1, 0.25, 0, -2);
    const bias = Float32Array.of(0.5, 0, -1, 8);
    const got = await matmul({ x, w, bias, rows: 2, inDim: 3, outDim: 4 }, { implementation });
    expect([...got]).toEqual([1.5, 2, 5, 2.25, -0.5, 0, -1.5, 6.75]);
  });
});

/** A Uint16Array of n random F16/BF16 elements at `offset` elements into a larger buffer (2-byte aligned, not 4). */
function halfWeights(dtype: 'F16' | 'BF16', n: number, next: () => number, offset: number, special = 0): Weights {
  const bits = new Uint16Array(randomTensor(dtype, n, next, { special }).buffer);
  const big = new Uint16Array(n + offset + 3).fill(0x7e00);
  big.set(bits, offset);
  return { dtype, data: big.subarray(offset, offset + n) };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Rows across 6-row strips and 768-row blocks; inDim off every SIMD width (8, 16) and the 128-input block. */
const HALF_SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 17, 65], [1, 300, 130], [3, 15, 7], [6, 37, 64], [7, 129, 65], [17, 200, 3], [50, 23, 130], [800, 41, 70],
];

describe.each(IMPLEMENTATIONS)('matmul with %s on F16 and BF16 weights', (implementation) => {
  test.each(['F16', 'BF16'] as const)('%s: bit for bit the product with the weights widened to F32 first, awkward values included', async (dtype) => {
    const next = rng(dtype === 'F16' ? 21 : 22);
    let offset = 0;
    for (const [rows, inDim, outDim] of HALF_SHAPES) {
      for (const withBias of [false, true]) {
        const w = halfWeights(dtype, outDim * inDim, next, 1 + (offset++ % 5), 0.05);
        const x = randomF32(rows * inDim, next), bias = withBias ? randomF32(outDim, next) : undefined;
        const widened = await toF32(w.data, dtype, undefined, { implementation });
        for (const threads of [1, 2]) {
          const half = await matmul({ x, w, bias, rows, inDim, outDim }, { implementation, threads });
          const f32 = await matmul({ x, w: widened, bias, rows, inDim, outDim }, { implementation, threads });
          expect(sameBits(half, f32), `${rows}x${inDim} -> ${outDim}${withBias ? ' +bias' : ''}, ${threads} threads`).toBe(true);
        }
      }
    }
  });

  test.each(['F16', 'BF16'] as const)('%s: within MATMUL_REL_TOL of the reference on finite weights', async (dtype) => {
    const next = rng(dtype === 'F16' ? 23 : 24);
    let offset = 0;
    for (const [rows, inDim, outDim] of HALF_SHAPES) {
      const w = halfWeights(dtype, outDim * inDim, next, 1 + (offset++ % 5));
      const p = { x: randomF32(rows * inDim, next), w: await toF32(w.data, dtype), bias: randomF32(outDim, next), rows, inDim, outDim };
      const want = await matmul(p, { implementation: 'js' });
      const got = await matmul({ ...p, w }, { implementation });
      expect(mismatch(got, want, magnitudes(p), `${rows}x${inDim} -> ${outDim}`)).toBeNull();
    }
  });
});

describe('matmul arguments', () => {
  test('sizes that do not match rows, inDim and outDim are RangeErrors naming the argument', async () => {
    const x = new Float32Array(6), w = new Float32Array(12);
    await expect(matmul({ x, w, rows: 2, inDim: 4, outDim: 3 })).rejects.toThrow(/x has 6 elements/);
    await expect(matmul({ x, w, rows: 2, inDim: 3, outDim: 5 })).rejects.toThrow(/w has 12 elements/);
    await expect(matmul({ x, w, rows: 2, inDim: 3, outDim: 4, bias: new Float32Array(3) })).rejects.toThrow(/bias has 3/);
    await expect(matmul({ x, w, rows: 2, inDim: 3, outDim: 4, out: new Float32Array(7) })).rejects.toThrow(/out has 7/);
    await expect(matmul({ x, w: { dtype: 'BF16', data: new Uint16Array(11) }, rows: 2, inDim: 3, outDim: 4 })).rejects.toThrow(/w has 11 elements/);
  });

  test('an out that overlaps an input is refused rather than read while written', async () => {
    const buf = new Float32Array(20);
    const x = buf.subarray(0, 6), w = new Float32Array(6);
    await expect(matmul({ x, w, rows: 3, inDim: 2, outDim: 3, out: buf.subarray(4, 13) })).rejects.toThrow(/overlaps x/);
  });
});
