// Every kernel implementation this machine supports (avx512, avx2, neon, scalar, and the TypeScript
// reference 'js') against the TypeScript reference and the scalar native kernels: bitwise kernels and
// merges exactly (merges compare NaN with NaN regardless of payload), reductions within SUM_REL_TOL.
// Inputs: every length 0..257 at shifting byte offsets, one large tensor spanning several blocks and
// threads, NaN payloads, +-0, +-Inf, subnormals and the largest finite values.

import { describe, expect, test } from 'vitest';

import {
  average, changeMask, classify3, dare, diffStats, DTYPE_SIZE, fromF32, maskedCombine, matvec, slerp, taskArithmetic,
  ties, tiesHistogram, tiesMerge, tiesSigns, TIES_KEY_BITS, toF32, type DType, type RunOptions,
} from '../../src/kernels/index.js';
import {
  ALL_DTYPES, atOffset, firstDifference, FLOAT_DTYPES, IMPLEMENTATIONS, mixIn, randomTensor, rng, statsMismatch,
  SUM_REL_TOL,
} from './helpers.js';

const JS: RunOptions = { implementation: 'js' };
/** The implementations checked against the oracles (the oracle itself is compared with itself). */
const UNDER_TEST = IMPLEMENTATIONS;
const ORACLES: RunOptions[] = [JS, ...(IMPLEMENTATIONS.includes('scalar') ? [{ implementation: 'scalar' }] : [])];
/** Three blocks of native/src/ops.h's kBlockElements and a tail: exercises block seams and both threads. */
const LARGE = 3 * (1 << 18) + 77;
/** Two blocks: large enough for seams and threads, small enough for the TypeScript merges. */
const MEDIUM = (1 << 18) + 4099;
const SMALL_LENGTHS = Array.from({ length: 258 }, (_, n) => n);

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

interface Case {
  n: number;
  offset: number;
}

function cases(): Case[] {
  return [...SMALL_LENGTHS.map((n) => ({ n, offset: n % 8 })), { n: LARGE, offset: 3 }];
}

describe.each(ALL_DTYPES)('bitwise kernels on %s', (dtype) => {
  test('changeMask: same mask and count in every implementation', async () => {
    const next = rng(1);
    for (const { n, offset } of cases()) {
      const a = randomTensor(dtype, n, next, { special: 0.2 });
      const b = atOffset(mixIn(a, randomTensor(dtype, n, next, { special: 0.2 }), dtype, 0.5, next), offset);
      const want = await changeMask(a, b, dtype, JS);
      for (const implementation of UNDER_TEST) {
        const got = await changeMask(atOffset(a, (offset * 3) % 8), b, dtype, { implementation });
        expect(got.count, `${implementation} n=${n}`).toBe(want.count);
        expect(hex(got.mask), `${implementation} n=${n}`).toBe(hex(want.mask));
      }
    }
  });

  test('classify3: same masks and counts in every implementation', async () => {
    const next = rng(2);
    for (const { n, offset } of cases()) {
      const o = randomTensor(dtype, n, next, { special: 0.2 });
      const a = mixIn(o, randomTensor(dtype, n, next, { special: 0.2 }), dtype, 0.5, next);
      const b = mixIn(mixIn(o, randomTensor(dtype, n, next, { special: 0.2 }), dtype, 0.5, next), a, dtype, 0.3, next);
      const want = await classify3(o, a, b, dtype, JS);
      for (const implementation of UNDER_TEST) {
        const got = await classify3(atOffset(o, offset), atOffset(a, (offset + 1) % 8), b, dtype, { implementation });
        expect(got.counts, `${implementation} n=${n}`).toEqual(want.counts);
        for (const k of Object.keys(want.masks) as (keyof typeof want.masks)[]) {
          expect(hex(got.masks[k]), `${implementation} ${k} n=${n}`).toBe(hex(want.masks[k]));
        }
      }
    }
  });

  test('maskedCombine: takes b exactly where the mask is set', async () => {
    const next = rng(3);
    for (const { n, offset } of cases()) {
      const a = randomTensor(dtype, n, next, { special: 0.2 });
      const b = randomTensor(dtype, n, next, { special: 0.2 });
      const mask = randomTensor('U8', Math.ceil(n / 8), next);
      const want = await maskedCombine({ a, b, mask, dtype }, JS);
      for (const implementation of UNDER_TEST) {
        const out = atOffset(new Uint8Array(a.byteLength), offset);
        await maskedCombine({ a: atOffset(a, offset), b, mask, dtype, out }, { implementation });
        expect(firstDifference(out, want, dtype, false), `${implementation} n=${n}`).toBe(-1);
      }
    }
  });

  test('diffStats: counts and max exact, sums within SUM_REL_TOL', async () => {
    const next = rng(4);
    for (const { n, offset } of cases()) {
      const a = randomTensor(dtype, n, next, { special: 0.05 });
      const b = atOffset(mixIn(a, randomTensor(dtype, n, next, { special: 0.05 }), dtype, 0.7, next), offset);
      for (const oracle of ORACLES) {
        const want = await diffStats(a, b, dtype, oracle);
        for (const implementation of UNDER_TEST) {
          const got = await diffStats(atOffset(a, (offset + 5) % 8), b, dtype, { implementation });
          expect(statsMismatch(got, want), `${implementation} vs ${oracle.implementation} n=${n}`).toBeNull();
        }
      }
    }
  });
});

describe('diffStats', () => {
  test('known values', async () => {
    const a = new Float32Array([1, 2, -3, NaN, Infinity, 0, -0, 5]);
    const b = new Float32Array([1, -2, -1, 4, 1, -0, 0, NaN]);
    for (const implementation of UNDER_TEST) {
      const s = await diffStats(a, b, 'F32', { implementation });
      expect(s).toEqual({
        // finite pairs: (1,1) (2,-2) (-3,-1) (0,-0) (-0,0)
        sumA2: 14, sumB2: 6, sumAB: 0, sumD2: 20, maxAbsDiff: 4,
        changed: 7, signFlips: 1, nanA: 1, nanB: 1, infA: 1, infB: 0,
      });
    }
  });

  test('native results do not depend on the thread count', async () => {
    const next = rng(5);
    const a = randomTensor('F32', LARGE, next), b = randomTensor('F32', LARGE, next);
    for (const implementation of UNDER_TEST.filter((i) => i !== 'js')) {
      const one = await diffStats(a, b, 'F32', { implementation, threads: 1 });
      const two = await diffStats(a, b, 'F32', { implementation, threads: 2 });
      expect(two).toEqual(one);
    }
  });
});

describe.each(FLOAT_DTYPES)('conversions on %s', (dtype) => {
  test('toF32 and fromF32 give the same bits in every implementation', async () => {
    const next = rng(6);
    for (const { n, offset } of cases()) {
      const src = randomTensor(dtype, n, next, { special: 0.3 });
      // Any f32 bit pattern: uniform random bits cover NaN payloads, subnormals and overflow.
      const f32 = new Float32Array(randomTensor('U32', n, next).buffer);
      const wantWide = await toF32(src, dtype, undefined, JS);
      const wantNarrow = await fromF32(f32, dtype, undefined, JS);
      for (const implementation of UNDER_TEST) {
        const wide = await toF32(atOffset(src, offset), dtype, undefined, { implementation });
        expect(firstDifference(new Uint8Array(wide.buffer), new Uint8Array(wantWide.buffer), 'F32', false), `${implementation} n=${n}`).toBe(-1);
        const narrow = await fromF32(f32, dtype, atOffset(new Uint8Array(wantNarrow.byteLength), offset), { implementation });
        expect(firstDifference(narrow, wantNarrow, dtype, false), `${implementation} n=${n}`).toBe(-1);
        const into = new Float32Array(n + 1).subarray(1);
        expect(await toF32(src, dtype, into, { implementation })).toBe(into);
        expect(hex(new Uint8Array(into.buffer, 4, 4 * n))).toBe(hex(new Uint8Array(wantWide.buffer)));
      }
    }
  });
});

describe('F16 and BF16 rounding', () => {
  // Every 16-bit pattern, and the f32 values just below, at and just above each halfway point.
  const all16 = new Uint8Array(new Uint16Array(Array.from({ length: 65536 }, (_, h) => h)).buffer);

  test.each(['F16', 'BF16'] as const)('%s: every pattern widens identically and round-trips (NaNs become quiet)', async (dtype) => {
    const want = await toF32(all16, dtype, undefined, JS);
    for (const implementation of UNDER_TEST) {
      const wide = await toF32(all16, dtype, undefined, { implementation });
      expect(hex(new Uint8Array(wide.buffer))).toBe(hex(new Uint8Array(want.buffer)));
      const back = new Uint16Array((await fromF32(wide, dtype, undefined, { implementation })).buffer);
      const src = new Uint16Array(all16.buffer);
      const inf = dtype === 'F16' ? 0x7c00 : 0x7f80, quiet = dtype === 'F16' ? 0x200 : 0x40;
      for (let h = 0; h < 65536; h++) {
        const expected = (h & 0x7fff) > inf ? h | quiet : h;
        if (back[h] !== expected) expect.fail(`${implementation}: ${h.toString(16)} -> ${back[h]!.toString(16)}`);
      }
    }
  });

  test.each(['F16', 'BF16'] as const)('%s: halfway cases round to even', async (dtype) => {
    const wide = new Uint32Array((await toF32(all16, dtype, undefined, JS)).buffer);
    const probes: number[] = [];
    for (let h = 0; h < 0x7c00; h++) {
      const lo = wide[h]!, hi = wide[h + 1]!;
      if (dtype === 'BF16' && h >= 0x7f80) break;
      const mid = lo + Math.floor((hi - lo) / 2); // both non-negative and ordered
      probes.push(mid - 1, mid, mid + 1);
    }
    const f32 = new Float32Array(new Uint32Array(probes).buffer);
    const want = await fromF32(f32, dtype, undefined, JS);
    // Spot-check the oracle itself: the exact midpoint goes to the even neighbour.
    const w16 = new Uint16Array(want.buffer);
    for (let i = 0; i < probes.length; i += 3) {
      const h = i / 3;
      if ((wide[h + 1]! - wide[h]!) % 2 === 0) expect(w16[i + 1]! & 1, `midpoint above ${h}`).toBe(0);
    }
    for (const implementation of UNDER_TEST) {
      expect(hex(await fromF32(f32, dtype, undefined, { implementation }))).toBe(hex(want));
    }
  });
});

/** Base tensors and fine-tuned variants: small deltas, some elements untouched, a few specials. */
function mergeInputs(dtype: DType, n: number, models: number, seed: number, special: number) {
  const next = rng(seed);
  const base = randomTensor(dtype, n, next, { special });
  const list = Array.from({ length: models }, () => {
    const delta = randomTensor(dtype, n, next, { special, scale: 3 });
    return mixIn(base, delta, dtype, 0.7, next);
  });
  return { base, models: list };
}

const MERGES: { name: string; special: number; run: (base: Uint8Array, models: Uint8Array[], dtype: DType, opts: RunOptions, out?: Uint8Array) => Promise<Uint8Array> }[] = [
  { name: 'taskArithmetic', special: 0.02, run: (base, models, dtype, opts, out) => taskArithmetic({ base, models, weights: [0.7, 0.45, 1.3].slice(0, models.length), lambda: 0.9, dtype, out }, opts) },
  { name: 'average', special: 0.02, run: (_base, models, dtype, opts, out) => average({ models, weights: [1, 2, 3].slice(0, models.length), dtype, out }, opts) },
  { name: 'dare', special: 0.02, run: (base, models, dtype, opts, out) => dare({ base, models, density: 0.3, seed: 0xdeadbeefcafen, lambda: 1.1, dtype, out }, opts) },
  { name: 'ties', special: 0, run: (base, models, dtype, opts, out) => ties({ base, models, density: 0.35, lambda: 0.8, dtype, out }, opts) },
];

describe.each(FLOAT_DTYPES)('merges on %s', (dtype) => {
  test.each(MERGES)('$name gives the same bits in every implementation', async ({ run, special }) => {
    for (const { n, offset } of [...cases().filter((c) => c.n % 16 === 1 || c.n < 20), { n: MEDIUM, offset: 5 }]) {
      const { base, models } = mergeInputs(dtype, n, n % 3 + 1, n + 11, special);
      const want = await run(base, models, dtype, JS);
      for (const implementation of UNDER_TEST) {
        const out = atOffset(new Uint8Array(base.byteLength), offset);
        await run(atOffset(base, offset), models.map((m, i) => atOffset(m, (offset + i) % 8)), dtype, { implementation }, out);
        const at = firstDifference(out, want, dtype, true);
        expect(at, `${implementation} n=${n} element ${at}`).toBe(-1);
      }
    }
  });

  test.each(MERGES)('$name may write over its own base: the same bits in every implementation', async ({ run, special }) => {
    for (const n of [1, 17, 513, MEDIUM]) {
      const { base, models } = mergeInputs(dtype, n, 2, n + 3, special);
      const want = await run(base, models, dtype, JS);
      for (const implementation of [...UNDER_TEST, 'js']) {
        const inPlace = Uint8Array.from(base);
        const got = await run(inPlace, models, dtype, implementation === 'js' ? JS : { implementation }, inPlace);
        expect(got.buffer, implementation).toBe(inPlace.buffer);
        const at = firstDifference(inPlace, want, dtype, true);
        expect(at, `${implementation} n=${n} element ${at}`).toBe(-1);
      }
    }
  });

  test('slerp agrees within a rounding step, and is exact at t = 0 and t = 1', async () => {
    for (const n of [1, 17, 255, MEDIUM]) {
      const { base: a, models: [b] } = mergeInputs(dtype, n, 1, n, 0);
      const want = new Float64Array((await toF32(await slerp({ a, b: b!, t: 0.3, dtype }, JS), dtype, undefined, JS)).map(Number));
      for (const implementation of UNDER_TEST) {
        const got = await toF32(await slerp({ a, b: b!, t: 0.3, dtype }, { implementation }), dtype, undefined, JS);
        const ulp = dtype === 'BF16' ? 2 ** -7 : dtype === 'F16' ? 2 ** -10 : dtype === 'F32' ? 2 ** -23 : 2 ** -52;
        for (let j = 0; j < n; j++) {
          if (!(Math.abs(got[j]! - want[j]!) <= 2 * ulp * Math.abs(want[j]!) + 1e-30)) expect.fail(`${implementation} n=${n} j=${j}: ${got[j]} vs ${want[j]}`);
        }
        expect(hex(await slerp({ a, b: b!, t: 0, dtype }, { implementation })), implementation).toBe(hex(a));
      }
    }
  });
});

describe.each(FLOAT_DTYPES)('merges of a tensor in blocks on %s', (dtype) => {
  /** Uneven blocks: a seam inside a kernel block, a one-element block, and the rest. */
  const blocksOf = (n: number) => [0, Math.min(n, 1000), Math.min(n, 1001), Math.min(n, (1 << 18) + 5), n].filter((x, k, all) => k === 0 || x > all[k - 1]!);
  const slice = (t: Uint8Array, from: number, to: number) => t.subarray(from * DTYPE_SIZE[dtype], to * DTYPE_SIZE[dtype]);

  test('dare with each block\'s element offset gives the whole tensor\'s bits in every implementation', async () => {
    for (const n of [17, MEDIUM]) {
      const { base, models } = mergeInputs(dtype, n, 2, n + 5, 0.02);
      const want = await dare({ base, models, density: 0.3, seed: 77, dtype }, JS);
      for (const implementation of UNDER_TEST) {
        const cuts = blocksOf(n);
        const parts: Uint8Array[] = [];
        for (let k = 1; k < cuts.length; k++) {
          const [from, to] = [cuts[k - 1]!, cuts[k]!];
          parts.push(await dare({ base: slice(base, from, to), models: models.map((m) => slice(m, from, to)), density: 0.3, seed: 77, dtype, first: from }, { implementation }));
        }
        const at = firstDifference(Buffer.concat(parts), want, dtype, true);
        expect(at, `${implementation} n=${n} element ${at}`).toBe(-1);
      }
    }
  });

  test('tiesHistogram (radix selection), tiesSigns and tiesMerge over blocks give ties\' bits in every implementation', async () => {
    for (const [n, density] of [[17, 0.35], [MEDIUM, 0.35], [MEDIUM, 0], [MEDIUM, 1]] as const) {
      const { base, models } = mergeInputs(dtype, n, 2, n + 9, 0);
      const want = await ties({ base, models, density, lambda: 0.8, dtype }, JS); // thresholds by sorting
      for (const implementation of UNDER_TEST) {
        const opts = { implementation };
        const cuts = blocksOf(n);
        const blocks = cuts.slice(1).map((to, k) => ({ o: slice(base, cuts[k]!, to), ms: models.map((m) => slice(m, cuts[k]!, to)) }));
        const keep = BigInt(Math.floor(density * n));
        const thresholds: bigint[] = [];
        for (let model = 0; model < 2; model++) {
          if (keep === 0n || keep >= BigInt(n)) {
            thresholds.push(keep === 0n ? 2n ** 64n - 1n : 0n);
            continue;
          }
          let prefix = 0n, rank = keep;
          for (let shift = TIES_KEY_BITS(dtype) - 16; shift >= 0; shift -= 16) {
            const hist = new BigUint64Array(65536);
            for (const b of blocks) await tiesHistogram({ base: b.o, models: b.ms, model, shift, prefix, hist, dtype }, opts);
            let bin = 65535;
            for (; bin > 0 && hist[bin]! < rank; bin--) rank -= hist[bin]!;
            prefix = (prefix << 16n) | BigInt(bin);
          }
          thresholds.push(prefix);
        }
        let positive = 0, negative = 0;
        for (const b of blocks) {
          const [p, q] = await tiesSigns({ base: b.o, models: b.ms, thresholds, dtype }, opts);
          positive += p;
          negative += q;
        }
        const parts: Uint8Array[] = [];
        for (const b of blocks) parts.push(await tiesMerge({ base: b.o, models: b.ms, thresholds, majority: positive >= negative ? 1 : -1, lambda: 0.8, dtype }, opts));
        const at = firstDifference(Buffer.concat(parts), want, dtype, true);
        expect(at, `${implementation} n=${n} density=${density} element ${at}`).toBe(-1);
      }
    }
  });
});

describe.each(FLOAT_DTYPES)('matvec on %s', (dtype) => {
  test('M x and M^T x within SUM_REL_TOL', async () => {
    for (const [rows, cols] of [[1, 1], [3, 5], [17, 300], [600, 1100], [1, 1 << 19]] as const) {
      const next = rng(rows * cols);
      const matrix = atOffset(randomTensor(dtype, rows * cols, next), 1);
      for (const transpose of [false, true]) {
        const x = new Float64Array(transpose ? rows : cols).map(() => next() - 0.5);
        const want = await matvec({ matrix, rows, cols, dtype, x, transpose }, JS);
        const bound = await matvec({ matrix: new Float32Array(await toF32(matrix, dtype)).map(Math.abs), rows, cols, dtype: 'F32', x: x.map(Math.abs), transpose }, JS);
        for (const implementation of UNDER_TEST) {
          const got = await matvec({ matrix, rows, cols, dtype, x, transpose }, { implementation });
          for (let i = 0; i < got.length; i++) {
            if (!(Math.abs(got[i]! - want[i]!) <= SUM_REL_TOL * bound[i]!)) expect.fail(`${implementation} ${rows}x${cols} T=${transpose} i=${i}`);
          }
        }
      }
    }
  });
});

test('element sizes match the safetensors dtypes', () => {
  expect(DTYPE_SIZE).toMatchObject({ F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, U8: 1, BOOL: 1 });
});
