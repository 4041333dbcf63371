// The inference engine's native activations and attention (src/kernels activation, attention) in every
// implementation this machine supports against the TypeScript reference, which computes in f64 with
// Math.exp / Math.tanh: odd lengths, every activation, GQA, causal masks with and without a window,
// head sizes that are not a multiple of 16, one and two threads.

import { describe, expect, test } from 'vitest';

import { activation, attention, layernorm, rmsnorm, type ActivationName, type AttentionArgs } from '../../src/kernels/index.js';
import { IMPLEMENTATIONS, rng } from './helpers.js';

/**
 * Native activations evaluate in f32 with a polynomial exp (within 2 ulp) and, for gelu, the same
 * Abramowitz & Stegun erf as the reference: a few f32 ulps of the result's factors, so within
 * ACTIVATION_TOL * |x| of the f64 reference.
 */
const ACTIVATION_TOL = 1e-6;
/**
 * Attention sums D products per score and at most 40 weighted rows per output in f32: with |q|, |k| <= 1
 * and scale 1/sqrt(D), score errors stay below 1e-6 and the output within ATTENTION_TOL * max |v|.
 */
const ATTENTION_TOL = 1e-5;
const FNS: ActivationName[] = ['gelu', 'gelu_tanh', 'silu'];

function values(n: number, next: () => number): Float32Array {
  const x = new Float32Array(n);
  for (let j = 0; j < n; j++) x[j] = j % 5 === 0 ? (next() - 0.5) * 200 : (next() - 0.5) * 12; // the tails and the bend
  if (n > 4) x.set([0, -0, 1e-30, -1e-30], 0);
  return x;
}

describe.each(IMPLEMENTATIONS)('engine ops with %s', (implementation) => {
  test.each(FNS)('activation %s: within ACTIVATION_TOL * |x| of the reference at every length 0..70 and 1e5', async (fn) => {
    const next = rng(21);
    for (const n of [...Array.from({ length: 71 }, (_, i) => i), 100_003]) {
      const x = values(n, next);
      const want = await activation({ x: x.slice(), fn }, { implementation: 'js' });
      const buf = new Float32Array(n + 3); // in place, on a view that is not 16-byte aligned
      buf.set(x, 3);
      const view = buf.subarray(3);
      await activation({ x: view, fn }, { implementation });
      for (let j = 0; j < n; j++) {
        const err = Math.abs(view[j]! - want[j]!);
        if (!(err <= ACTIVATION_TOL * Math.abs(x[j]!) + 1e-37)) {
          expect.fail(`${fn}(${x[j]}) = ${view[j]}, reference ${want[j]} (n=${n}, j=${j})`);
        }
      }
    }
  });

  test.each(FNS)('activation %s: NaN stays NaN, 0 stays 0', async (fn) => {
    const x = await activation({ x: Float32Array.of(Number.NaN, 0, 1, -1), fn }, { implementation });
    expect(Number.isNaN(x[0])).toBe(true);
    expect(x[1]).toBe(0);
  });

  const SHAPES: { heads: number; kvHeads: number; headDim: number; causal: boolean; window: number | null }[] = [
    { heads: 4, kvHeads: 4, headDim: 64, causal: true, window: null },
    { heads: 4, kvHeads: 4, headDim: 64, causal: false, window: null },
    { heads: 6, kvHeads: 2, headDim: 20, causal: true, window: null },
    { heads: 4, kvHeads: 1, headDim: 33, causal: true, window: 3 },
    { heads: 2, kvHeads: 2, headDim: 7, causal: false, window: null },
  ];
  test.each(SHAPES)('attention %o: within ATTENTION_TOL * max |v| of the reference, threads agree bit for bit', async (shape) => {
    const next = rng(22);
    const lengths = [1, 5, 14, 2, 33, 16];
    const rows = lengths.reduce((a, b) => a + b, 0) + 3; // three rows in no sequence: left untouched
    const seqs = lengths.map((length, i) => ({ start: lengths.slice(0, i).reduce((a, b) => a + b, 0) + 2, length }));
    const rand = (n: number) => Float32Array.from({ length: n }, () => next() * 2 - 1);
    const args: AttentionArgs = {
      ...shape, seqs, scale: 1 / Math.sqrt(shape.headDim),
      q: rand(rows * shape.heads * shape.headDim), k: rand(rows * shape.kvHeads * shape.headDim),
      v: rand(rows * shape.kvHeads * shape.headDim), out: new Float32Array(rows * shape.heads * shape.headDim).fill(7),
    };
    const want = await attention({ ...args, out: args.out.slice() }, { implementation: 'js' });
    const one = await attention({ ...args, out: args.out.slice() }, { implementation, threads: 1 });
    const two = await attention({ ...args, out: args.out.slice() }, { implementation, threads: 2 });
    const maxV = args.v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    for (let j = 0; j < want.length; j++) {
      if (!(Math.abs(one[j]! - want[j]!) <= ATTENTION_TOL * maxV)) expect.fail(`element ${j}: ${one[j]}, reference ${want[j]}`);
    }
    expect(Buffer.from(two.buffer).equals(Buffer.from(one.buffer))).toBe(true);
    expect(one[0]).toBe(7); // row 0 belongs to no sequence
  });
});

describe('engine op arguments', () => {
  test('attention refuses mismatched heads, rows, windows and sequences past the end', async () => {
    const base: AttentionArgs = {
      q: new Float32Array(8), k: new Float32Array(8), v: new Float32Array(8), out: new Float32Array(8),
      seqs: [{ start: 0, length: 2 }], heads: 2, kvHeads: 2, headDim: 2, scale: 1, causal: true, window: null,
    };
    await expect(attention({ ...base, kvHeads: 3 })).rejects.toThrow(/heads/);
    await expect(attention({ ...base, k: new Float32Array(6) })).rejects.toThrow(/same rows/);
    await expect(attention({ ...base, window: 0 })).rejects.toThrow(/window/);
    await expect(attention({ ...base, seqs: [{ start: 1, length: 2 }] })).rejects.toThrow(/runs past/);
    await expect(attention({ ...base, out: base.q })).rejects.toThrow(/overlaps q/);
  });

  test('an unknown activation is a TypeError', async () => {
    await expect(activation({ x: new Float32Array(2), fn: 'tanh' as ActivationName })).rejects.toThrow(/unknown activation/);
  });
});

describe.each(IMPLEMENTATIONS)('norms with %s', (implementation) => {
  /** Sums in f64 everywhere; the f32 arithmetic after them rounds a few times: 1e-6 is about 8 ulps. */
  const NORM_TOL = 1e-6;
  test.each([
    { rows: 1, dim: 1 }, { rows: 3, dim: 7 }, { rows: 17, dim: 768 }, { rows: 40, dim: 130 }, { rows: 2000, dim: 33 },
  ])('layernorm and rmsnorm %o, with and without bias, in place and not: within NORM_TOL of the reference', async ({ rows, dim }) => {
    const next = rng(23 + dim);
    const x = Float32Array.from({ length: rows * dim }, () => (next() - 0.3) * 10);
    const weight = Float32Array.from({ length: dim }, () => next() * 2 - 1);
    const bias = Float32Array.from({ length: dim }, () => next() - 0.5);
    const run = async (rms: boolean, b: Float32Array | null, inPlace: boolean, impl: string) => {
      const input = x.slice();
      const args = { x: input, rows, dim, weight, bias: b, eps: 1e-5, out: inPlace ? input : undefined };
      return rms ? rmsnorm(args, { implementation: impl }) : layernorm(args, { implementation: impl });
    };
    for (const rms of [false, true]) {
      for (const b of [bias, null]) {
        const want = await run(rms, b, false, 'js');
        for (const inPlace of [false, true]) {
          const got = await run(rms, b, inPlace, implementation);
          for (let j = 0; j < want.length; j++) {
            // a few f32 roundings of the output's terms: (x - mean) inv w, the bias, and mean's rounding times inv w
            const scale = Math.abs(want[j]!) + (b ? Math.abs(b[j % dim]!) : 0) + Math.abs(weight[j % dim]!);
            if (!(Math.abs(got[j]! - want[j]!) <= NORM_TOL * scale)) {
              expect.fail(`${rms ? 'rmsnorm' : 'layernorm'} element ${j}: ${got[j]}, reference ${want[j]}`);
            }
          }
        }
      }
    }
  });

  test('a constant row normalises to the bias (layernorm)', async () => {
    const out = await layernorm({ x: new Float32Array(8).fill(3), rows: 1, dim: 8, weight: new Float32Array(8).fill(2), bias: new Float32Array(8).fill(0.5), eps: 1e-5 }, { implementation });
    expect([...out]).toEqual(new Array(8).fill(0.5));
  });
});
