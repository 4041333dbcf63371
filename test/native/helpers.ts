// Inputs and comparisons for the kernel tests: a seeded PRNG, tensors full of awkward values
// (NaN payloads, +-0, +-Inf, subnormals, the largest finite values), unaligned copies, and the
// tolerances for reductions.

import { DTYPE_SIZE, kernelInfo, type DType, type DiffStats } from '../../src/kernels/index.js';
import { f32BitsToF16 } from '../../src/kernels/reference.js';

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/**
 * Reductions (sums in diffStats, matvec) may differ between implementations only by summation order:
 * the error of a sum of n terms in f64 is below n * 2^-53 * sum|terms|; n <= 2^21 here.
 */
export const SUM_REL_TOL = 1e-9;

/** Every implementation to check on this machine: the native ones and the TypeScript reference. */
export const IMPLEMENTATIONS = kernelInfo().supported;

export const FLOAT_DTYPES: DType[] = ['F32', 'F16', 'BF16', 'F64'];
export const ALL_DTYPES: DType[] = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL'];

/** mulberry32: small, seeded, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bit patterns that break naive kernels, per float width (little-endian element bytes). */
const SPECIAL_BITS: Record<string, number[] | bigint[]> = {
  F32: [0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0x00000001, 0x807fffff,
    0x00800000, 0x7f7fffff, 0xff7fffff, 0x3f800000, 0xbf800000, 0x477ff000, 0x477fefff, 0x33000000, 0x33000001],
  F16: [0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0xfe01, 0x7c01, 0x0001, 0x83ff, 0x0400, 0x7bff, 0xfbff, 0x3c00, 0xbc00],
  BF16: [0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81, 0x0001, 0x807f, 0x0080, 0x7f7f, 0xff7f, 0x3f80, 0xbf80],
  F64: [0n, 0x8000000000000000n, 0x7ff0000000000000n, 0xfff0000000000000n, 0x7ff8000000000000n, 0xfff8000000000001n,
    0x7ff0000000000001n, 1n, 0x800fffffffffffffn, 0x0010000000000000n, 0x7fefffffffffffffn, 0x3ff0000000000000n,
    0xbff0000000000000n],
};

export interface TensorSpec {
  /** Probability that an element is a special bit pattern. */
  special?: number;
  /** Values are normal(0, scale) unless special; default 1. */
  scale?: number;
}

/** A tensor of n elements as bytes. Float dtypes get gaussian values and specials; integers random bits. */
export function randomTensor(dtype: DType, n: number, next: () => number, spec: TensorSpec = {}): Uint8Array {
  const w = DTYPE_SIZE[dtype];
  const out = new Uint8Array(n * w);
  const dv = new DataView(out.buffer);
  const specials = SPECIAL_BITS[dtype];
  const gauss = () => Math.sqrt(-2 * Math.log(next() || 1e-300)) * Math.cos(2 * Math.PI * next()) * (spec.scale ?? 1);
  for (let j = 0; j < n; j++) {
    if (specials && next() < (spec.special ?? 0)) {
      const s = specials[Math.floor(next() * specials.length)]!;
      if (w === 8) dv.setBigUint64(j * 8, s as bigint, true);
      else if (w === 4) dv.setUint32(j * 4, s as number, true);
      else dv.setUint16(j * 2, s as number, true);
      continue;
    }
    switch (dtype) {
      case 'F64': dv.setFloat64(j * 8, gauss(), true); break;
      case 'F32': dv.setFloat32(j * 4, gauss(), true); break;
      case 'F16': case 'BF16':
        scratch[0] = gauss();
        dv.setUint16(j * 2, dtype === 'BF16' ? scratchBits[0]! >>> 16 : f32BitsToF16(scratchBits[0]!), true);
        break;
      case 'BOOL': out[j] = next() < 0.5 ? 1 : 0; break;
      default: for (let k = 0; k < w; k++) out[j * w + k] = Math.floor(next() * 256);
    }
  }
  return out;
}

/** A copy of `src` where each element is replaced, with probability p, by the same element of `from`. */
export function mixIn(src: Uint8Array, from: Uint8Array, dtype: DType, p: number, next: () => number): Uint8Array {
  const w = DTYPE_SIZE[dtype];
  const out = src.slice();
  for (let j = 0; j < src.length / w; j++) if (next() < p) out.set(from.subarray(j * w, (j + 1) * w), j * w);
  return out;
}

/** The same bytes at byte offset `offset` of a fresh buffer (so typed views of it are unaligned). */
export function atOffset(bytes: Uint8Array, offset: number): Uint8Array {
  const buf = new Uint8Array(bytes.byteLength + offset + 8);
  const v = buf.subarray(offset, offset + bytes.byteLength);
  v.set(bytes);
  return v;
}

/** Element-by-element equality that also accepts two NaNs with different payloads (float dtypes). */
export function firstDifference(x: Uint8Array, y: Uint8Array, dtype: DType, nanEqual: boolean): number {
  const w = DTYPE_SIZE[dtype];
  if (x.byteLength !== y.byteLength) return -2;
  for (let j = 0; j < x.byteLength / w; j++) {
    let same = true;
    for (let k = j * w; k < (j + 1) * w; k++) if (x[k] !== y[k]) same = false;
    if (!same && !(nanEqual && isNaNAt(x, j, dtype) && isNaNAt(y, j, dtype))) return j;
  }
  return -1;
}

function isNaNAt(b: Uint8Array, j: number, dtype: DType): boolean {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (dtype) {
    case 'F64': return Number.isNaN(dv.getFloat64(j * 8, true));
    case 'F32': return Number.isNaN(dv.getFloat32(j * 4, true));
    case 'F16': return (dv.getUint16(j * 2, true) & 0x7fff) > 0x7c00;
    case 'BF16': return (dv.getUint16(j * 2, true) & 0x7fff) > 0x7f80;
    default: return false;
  }
}

/** Checks two DiffStats: counts and the max exactly, sums within SUM_REL_TOL of their magnitude bound. */
export function statsMismatch(got: DiffStats, want: DiffStats): string | null {
  for (const k of ['changed', 'signFlips', 'nanA', 'nanB', 'infA', 'infB', 'maxAbsDiff'] as const) {
    if (got[k] !== want[k]) return `${k}: ${got[k]} != ${want[k]}`;
  }
  const bound = {
    sumA2: Math.abs(want.sumA2), sumB2: Math.abs(want.sumB2), sumD2: Math.abs(want.sumD2),
    sumAB: Math.sqrt(Math.abs(want.sumA2 * want.sumB2)),
  };
  for (const k of ['sumA2', 'sumB2', 'sumAB', 'sumD2'] as const) {
    if (Object.is(got[k], want[k])) continue;
    // Near the top of the f64 range, whether a partial sum overflows depends on the order of the terms.
    if (!Number.isFinite(got[k]) && !Number.isFinite(want[k])) continue;
    if (!(Math.abs(got[k] - want[k]) <= SUM_REL_TOL * bound[k])) return `${k}: ${got[k]} != ${want[k]}`;
  }
  return null;
}
