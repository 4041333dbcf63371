// The TypeScript reference kernels: the oracle the native kernels are tested against, and the
// fallback when the addon is missing. Each function mirrors one native kernel over whole tensors
// (raw little-endian bytes at any offset) and computes the same bits: f32 arithmetic is emulated
// with Math.fround after every operation, which is exact for + - * / of f32 values (a double holds
// their exact result to well over 2p + 2 bits, so rounding twice rounds once). The formulas are in
// docs/kernels.md; the native side is native/kernels/scalar.cc and generic.inc.

import {
  CLASSIFY3_KEYS, DTYPE_SIZE, type Classify3Counts, type Classify3Masks, type CombineMode, type DiffStats, type DType,
  type Weights,
} from './types.js';

// ---- element access ----------------------------------------------------------------------------

/**
 * A copy of the bytes in a fresh ArrayBuffer. Not `bytes.slice()`: on a Node Buffer (the merge driver's
 * tensor buffers) slice() is a view of the same memory, and a result written over the base then erased
 * the base bits that TIES and DARE keep.
 */
function copyOf(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

function aligned(bytes: Uint8Array, size: number): Uint8Array {
  return bytes.byteOffset % size === 0 ? bytes : copyOf(bytes);
}

function view<T>(bytes: Uint8Array, Ctor: { new (b: ArrayBufferLike, o: number, n: number): T; BYTES_PER_ELEMENT: number }): T {
  const b = aligned(bytes, Ctor.BYTES_PER_ELEMENT);
  return new Ctor(b.buffer, b.byteOffset, b.byteLength / Ctor.BYTES_PER_ELEMENT);
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);
const scratchF64 = new Float64Array(1);
const scratchU32x2 = new Uint32Array(scratchF64.buffer);

/** Mirrors f16_to_f32 in native/kernels/common.h: exact; NaNs come back quiet with their payload. */
export function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) {
    scratchF32[0] = man * 2 ** -24;
    return (sign | scratchU32[0]!) >>> 0;
  }
  if (exp === 31) return (sign | 0x7f800000 | (man ? 0x400000 | (man << 13) : 0)) >>> 0;
  return (sign | ((exp + 112) << 23) | (man << 13)) >>> 0;
}

/** Mirrors f32_to_f16: round to nearest even, overflow to Inf, NaN stays NaN (as F16C's vcvtps2ph). */
export function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const mag = x & 0x7fffffff;
  if (mag > 0x7f800000) return sign | 0x7e00 | ((mag >>> 13) & 0x3ff);
  if (mag >= 0x477ff000) return sign | 0x7c00;
  if (mag < 0x38800000) {
    const shift = 126 - (mag >>> 23);
    if (shift > 24) return sign;
    const man = (mag & 0x7fffff) | 0x800000;
    let r = man >>> shift;
    const rem = man & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let h = (mag >>> 13) - (112 << 10);
  const rem = mag & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** Mirrors f32_to_bf16: round to nearest even; NaNs get the quiet bit. */
export function f32BitsToBf16(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return Math.floor((x + 0x7fff + ((x >>> 16) & 1)) / 65536) & 0xffff;
}

let f16Table: Uint32Array | undefined;
function f16Bits(): Uint32Array {
  if (!f16Table) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32Bits(h);
  }
  return f16Table;
}

/** f64 -> f32 bits, NaN payloads as x86's cvtsd2ss keeps them (quiet, top mantissa bits). */
function f64ToF32Bits(lo: number, hi: number): number {
  if ((hi & 0x7fffffff) > 0x7ff00000 || ((hi & 0x7fffffff) === 0x7ff00000 && lo !== 0)) {
    return ((hi & 0x80000000) | 0x7fc00000 | ((hi & 0xfffff) << 3) | (lo >>> 29)) >>> 0;
  }
  scratchU32x2[0] = lo;
  scratchU32x2[1] = hi;
  scratchF32[0] = scratchF64[0]!;
  return scratchU32[0]!;
}

/** f32 bits -> f64 [lo, hi], NaNs quiet with their payload (as cvtss2sd). */
function f32ToF64Bits(x: number, out: Uint32Array, j: number): void {
  if ((x & 0x7fffffff) > 0x7f800000) {
    out[2 * j] = (x & 0x7) << 29;
    out[2 * j + 1] = ((x & 0x80000000) | 0x7ff80000 | ((x & 0x7fffff) >>> 3)) >>> 0;
    return;
  }
  scratchU32[0] = x;
  scratchF64[0] = scratchF32[0]!;
  out[2 * j] = scratchU32x2[0]!;
  out[2 * j + 1] = scratchU32x2[1]!;
}

/** The values of a float tensor, exactly: f32 values for F32/F16/BF16, f64 for F64. */
function floatValues(bytes: Uint8Array, dtype: DType): Float32Array | Float64Array {
  switch (dtype) {
    case 'F64': return view(bytes, Float64Array);
    case 'F32': return view(bytes, Float32Array);
    default: return new Float32Array(toF32(bytes, dtype).buffer);
  }
}

/** Values for ordering and statistics; 64-bit integers stay BigInt so that they compare exactly. */
function values(bytes: Uint8Array, dtype: DType): ArrayLike<number> | BigInt64Array | BigUint64Array {
  switch (dtype) {
    case 'F64': case 'F32': case 'F16': case 'BF16': return floatValues(bytes, dtype);
    case 'I64': return view(bytes, BigInt64Array);
    case 'U64': return view(bytes, BigUint64Array);
    case 'I32': return view(bytes, Int32Array);
    case 'U32': return view(bytes, Uint32Array);
    case 'I16': return view(bytes, Int16Array);
    case 'U16': return view(bytes, Uint16Array);
    case 'I8': return view(bytes, Int8Array);
    default: return bytes;
  }
}

/** (j) => the bit patterns of element j differ. */
function bitsDiffer(a: Uint8Array, b: Uint8Array, width: number): (j: number) => boolean {
  if (width === 1) return (j) => a[j] !== b[j];
  if (width === 2) {
    const x = view(a, Uint16Array), y = view(b, Uint16Array);
    return (j) => x[j] !== y[j];
  }
  const x = view(a, Uint32Array), y = view(b, Uint32Array);
  if (width === 4) return (j) => x[j] !== y[j];
  return (j) => x[2 * j] !== y[2 * j] || x[2 * j + 1] !== y[2 * j + 1];
}

function count(bytes: Uint8Array, dtype: DType): number {
  return bytes.byteLength / DTYPE_SIZE[dtype];
}

// ---- bitwise kernels ---------------------------------------------------------------------------

export function changeMask(a: Uint8Array, b: Uint8Array, dtype: DType, mask: Uint8Array): number {
  const n = count(a, dtype);
  const differ = bitsDiffer(a, b, DTYPE_SIZE[dtype]);
  mask.fill(0, 0, Math.ceil(n / 8));
  let changed = 0;
  for (let j = 0; j < n; j++) {
    if (differ(j)) {
      mask[j >> 3]! |= 1 << (j & 7);
      changed++;
    }
  }
  return changed;
}

export function classify3(o: Uint8Array, a: Uint8Array, b: Uint8Array, dtype: DType, masks: Classify3Masks): Classify3Counts {
  const n = count(o, dtype);
  const w = DTYPE_SIZE[dtype];
  const aChanged = bitsDiffer(a, o, w), bChanged = bitsDiffer(b, o, w), abDiffer = bitsDiffer(a, b, w);
  const vo = values(o, dtype), va = values(a, dtype), vb = values(b, dtype);
  const counts: Classify3Counts = { changedA: 0, changedB: 0, same: 0, conflict: 0, signConflict: 0 };
  for (const key of CLASSIFY3_KEYS) masks[key].fill(0, 0, Math.ceil(n / 8));
  const set = (key: (typeof CLASSIFY3_KEYS)[number], j: number) => {
    masks[key][j >> 3]! |= 1 << (j & 7);
    counts[key]++;
  };
  for (let j = 0; j < n; j++) {
    const ca = aChanged(j), cb = bChanged(j), cab = abDiffer(j);
    if (ca) set('changedA', j);
    if (cb) set('changedB', j);
    if (ca && !cab) set('same', j);
    if (ca && cb && cab) {
      set('conflict', j);
      const x = va[j]!, y = vb[j]!, z = vo[j]!;
      if ((x > z && y < z) || (x < z && y > z)) set('signConflict', j);
    }
  }
  return counts;
}

export function select(a: Uint8Array, b: Uint8Array, mask: Uint8Array, dtype: DType, out: Uint8Array): void {
  const n = count(a, dtype);
  const w = DTYPE_SIZE[dtype];
  for (let j = 0; j < n; j++) {
    const from = (mask[j >> 3]! >> (j & 7)) & 1 ? b : a;
    for (let k = j * w; k < (j + 1) * w; k++) out[k] = from[k]!;
  }
}

// ---- statistics --------------------------------------------------------------------------------

export function emptyStats(): DiffStats {
  return { sumA2: 0, sumB2: 0, sumAB: 0, sumD2: 0, maxAbsDiff: 0, changed: 0, signFlips: 0, nanA: 0, nanB: 0, infA: 0, infB: 0 };
}

export function diffStats(a: Uint8Array, b: Uint8Array, dtype: DType): DiffStats {
  const n = count(a, dtype);
  const differ = bitsDiffer(a, b, DTYPE_SIZE[dtype]);
  const va = values(a, dtype), vb = values(b, dtype);
  const s = emptyStats();
  for (let j = 0; j < n; j++) {
    const x = Number(va[j]!), y = Number(vb[j]!);
    if (differ(j)) s.changed++;
    if (Number.isNaN(x)) s.nanA++;
    if (Number.isNaN(y)) s.nanB++;
    if (x === Infinity || x === -Infinity) s.infA++;
    if (y === Infinity || y === -Infinity) s.infB++;
    if ((x > 0 && y < 0) || (x < 0 && y > 0)) s.signFlips++;
    if (Number.isFinite(x) && Number.isFinite(y)) {
      const d = x - y;
      s.sumA2 += x * x;
      s.sumB2 += y * y;
      s.sumAB += x * y;
      s.sumD2 += d * d;
      if (Math.abs(d) > s.maxAbsDiff) s.maxAbsDiff = Math.abs(d);
    }
  }
  return s;
}

// ---- conversions -------------------------------------------------------------------------------

export function toF32(src: Uint8Array, dtype: DType): Float32Array {
  const n = count(src, dtype);
  const out = new Uint32Array(n);
  switch (dtype) {
    case 'F32': new Uint8Array(out.buffer).set(src); break;
    case 'F16': { const h = view(src, Uint16Array), t = f16Bits(); for (let j = 0; j < n; j++) out[j] = t[h[j]!]!; break; }
    case 'BF16': { const h = view(src, Uint16Array); for (let j = 0; j < n; j++) out[j] = h[j]! << 16; break; }
    case 'F64': { const w = view(src, Uint32Array); for (let j = 0; j < n; j++) out[j] = f64ToF32Bits(w[2 * j]!, w[2 * j + 1]!); break; }
    default: { const v = values(src, dtype), f = new Float32Array(out.buffer); for (let j = 0; j < n; j++) f[j] = Number(v[j]!); }
  }
  return new Float32Array(out.buffer);
}

export function fromF32(src: Float32Array, dtype: DType, dst: Uint8Array): void {
  const n = src.length;
  const x = new Uint32Array(src.buffer, src.byteOffset, n);
  switch (dtype) {
    case 'F32': dst.set(new Uint8Array(src.buffer, src.byteOffset, n * 4)); return;
    case 'F16': case 'BF16': {
      const round = dtype === 'F16' ? f32BitsToF16 : f32BitsToBf16;
      const h = new Uint16Array(n);
      for (let j = 0; j < n; j++) h[j] = round(x[j]!);
      dst.set(new Uint8Array(h.buffer));
      return;
    }
    case 'F64': {
      const w = new Uint32Array(2 * n);
      for (let j = 0; j < n; j++) f32ToF64Bits(x[j]!, w, j);
      dst.set(new Uint8Array(w.buffer));
      return;
    }
    default: throw new TypeError(`fromF32: ${dtype} is not a float dtype`);
  }
}

/** Writes compute-type results (f32 or f64 values) into `out` in the tensor's dtype. */
function storeValues(res: Float32Array | Float64Array, dtype: DType, out: Uint8Array): void {
  if (res instanceof Float64Array) out.set(new Uint8Array(res.buffer, res.byteOffset, res.byteLength));
  else fromF32(res, dtype, out);
}

// ---- merges ------------------------------------------------------------------------------------

// 64-bit arithmetic on (hi, lo) uint32 pairs; results land in `hi` and `lo` (no allocation per call:
// DARE draws one number per element and model).
const TWO32 = 4294967296;
let hi = 0, lo = 0;

/** (hi, lo) = low 64 bits of a * b. */
function mul64(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
  const mid = a0 * b1 + a1 * b0; // < 2^33
  const low = a0 * b0 + (mid % 65536) * 65536; // < 2^33
  const high = a1 * b1 + Math.floor(mid / 65536) + Math.floor(low / TWO32);
  hi = ((high % TWO32) + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
  lo = low >>> 0;
}

/** (hi, lo) ^= (hi, lo) >> s, for 0 < s < 32. */
function xorShift(s: number): void {
  lo = (lo ^ ((lo >>> s) | (hi << (32 - s)))) >>> 0;
  hi = (hi ^ (hi >>> s)) >>> 0;
}

/** (hi, lo) = mix64(h, l): SplitMix64's output function (Steele, Lea, Flood 2014). */
function mixInPlace(h: number, l: number): void {
  hi = h, lo = l;
  xorShift(30);
  mul64(hi, lo, 0xbf58476d, 0x1ce4e5b9);
  xorShift(27);
  mul64(hi, lo, 0x94d049bb, 0x133111eb);
  xorShift(31);
}

/** mix64 on a BigInt, for tests and seeds. */
export function mix64(z: bigint): bigint {
  const v = BigInt.asUintN(64, z);
  mixInPlace(Number(v >> 32n) >>> 0, Number(v & 0xffffffffn) >>> 0);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** (hi, lo) = (h, l) + GOLDEN * k, for k < 2^53. */
function stepInPlace(h: number, l: number, k: number): void {
  mul64(0x9e3779b9, 0x7f4a7c15, Math.floor(k / TWO32) >>> 0, k >>> 0);
  const sum = l + lo;
  hi = (h + hi + (sum >= TWO32 ? 1 : 0)) >>> 0;
  lo = sum >>> 0;
}

/** Model i's DARE stream key: output i+1 of SplitMix64(seed). */
export function dareStream(seed: bigint, model: number): [number, number] {
  const s = BigInt.asUintN(64, seed);
  stepInPlace(Number(s >> 32n) >>> 0, Number(s & 0xffffffffn) >>> 0, model + 1);
  mixInPlace(hi, lo);
  return [hi, lo];
}

/** Whether DARE keeps element j of the model with this stream: (output j+1 >> 11) < keepBelow. */
export function dareKeep(stream: [number, number], j: number, keepBelow: number): boolean {
  stepInPlace(stream[0], stream[1], j + 1);
  mixInPlace(hi, lo);
  return hi * 2 ** 21 + (lo >>> 11) < keepBelow;
}

export interface CombineArgs {
  mode: CombineMode;
  dtype: DType;
  base: Uint8Array | null;
  models: Uint8Array[];
  coeffs: number[];
  seed: bigint;
  keepBelow: number;
  /** DARE: the tensor's element index of the first element here (a merge runs in blocks); default 0. */
  streamFirst?: number;
}

/** `base`, copied first when `out` overlaps it: a merge may write over its own base (restores read it after). */
function apartFrom(base: Uint8Array, out: Uint8Array): Uint8Array {
  const overlaps = base.buffer === out.buffer && base.byteOffset < out.byteOffset + out.byteLength && out.byteOffset < base.byteOffset + base.byteLength;
  return overlaps ? copyOf(base) : base;
}

/** Linear: sum c_i t_i. Task: o + sum c_i (t_i - o). Dare: the same over kept terms, o itself when none is kept. */
export function combine(args: CombineArgs, out: Uint8Array): void {
  if (args.base) args = { ...args, base: apartFrom(args.base, out) };
  const { mode, dtype } = args;
  const single = dtype !== 'F64';
  const r = single ? Math.fround : (x: number) => x;
  const o = args.base ? floatValues(args.base, dtype) : null;
  const ts = args.models.map((m) => floatValues(m, dtype));
  const cs = args.coeffs.map(r);
  const streams = mode === 'dare' ? ts.map((_, i) => dareStream(args.seed, i)) : [];
  const first = args.streamFirst ?? 0;
  const n = count(out, dtype);
  const res = single ? new Float32Array(n) : new Float64Array(n);
  const untouched: number[] = [];
  for (let j = 0; j < n; j++) {
    let acc = 0;
    let any = false;
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i]![j]!, c = cs[i]!;
      if (mode === 'linear') {
        const term = r(c * t);
        acc = i === 0 ? term : r(acc + term);
      } else if (mode === 'task') {
        const term = r(c * r(t - o![j]!));
        acc = i === 0 ? term : r(acc + term);
      } else if (dareKeep(streams[i]!, first + j, args.keepBelow)) {
        const term = r(c * r(t - o![j]!));
        acc = any ? r(acc + term) : term;
        any = true;
      }
    }
    if (mode === 'dare' && !any) untouched.push(j);
    res[j] = mode === 'linear' ? acc : r(o![j]! + acc);
  }
  storeValues(res, dtype, out);
  const w = DTYPE_SIZE[dtype];
  for (const j of untouched) out.set(args.base!.subarray(j * w, (j + 1) * w), j * w);
}

/** |d| as a sortable key: the f32/f64 bit pattern without its sign (NaNs above +Inf). */
function magnitudeKeys(d: Float32Array | Float64Array): Uint32Array | BigUint64Array {
  if (d instanceof Float32Array) {
    const k = new Uint32Array(d.length);
    const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
    for (let j = 0; j < d.length; j++) k[j] = bits[j]! & 0x7fffffff;
    return k;
  }
  const k = new BigUint64Array(d.length);
  const bits = new BigUint64Array(d.buffer, d.byteOffset, d.length);
  for (let j = 0; j < d.length; j++) k[j] = bits[j]! & 0x7fffffffffffffffn;
  return k;
}

/** The magnitude key no delta reaches: a model with it keeps nothing (the addon's UINT64_MAX). */
export const KEEP_NONE = 2n ** 64n - 1n;

/**
 * TIES (Yadav et al. 2023) per tensor: keep the keep[i] largest |t_i - o| of each model, elect the
 * sign of the sum of kept deltas (the majority sign of all elected signs where it is exactly 0),
 * average the kept deltas that agree with it, and add lambda times that mean to o.
 */
export function ties(dtype: DType, base: Uint8Array, models: Uint8Array[], keep: number[], lambda: number, out: Uint8Array): void {
  const o = floatValues(base, dtype);
  const n = o.length;
  // threshold(i): the keep[i]-th largest key (found by sorting: this is the oracle).
  const thresholds = models.map((m, i): bigint => {
    const want = keep[i]!;
    if (want <= 0) return KEEP_NONE;
    if (want >= n) return 0n;
    const t = floatValues(m, dtype);
    const d = dtype === 'F64' ? new Float64Array(n) : new Float32Array(n);
    for (let j = 0; j < n; j++) d[j] = t[j]! - o[j]!;
    const sorted = magnitudeKeys(d).sort();
    return BigInt(sorted[n - want]!);
  });
  const [positive, negative] = tiesSigns(dtype, base, models, thresholds);
  tiesMerge(dtype, base, models, thresholds, positive >= negative ? 1 : -1, lambda, out);
}

/** Model i's deltas t_i - o in the compute type, with kept(j): |delta j| reaches thresholds[i]. */
function trimmedDeltas(dtype: DType, base: Uint8Array, models: Uint8Array[], thresholds: bigint[]) {
  const o = floatValues(base, dtype);
  const n = o.length;
  return models.map((m, i) => {
    const t = floatValues(m, dtype);
    const d = dtype === 'F64' ? new Float64Array(n) : new Float32Array(n);
    for (let j = 0; j < n; j++) d[j] = t[j]! - o[j]!;
    const keys = magnitudeKeys(d);
    const thr = thresholds[i]!;
    const small = thr <= 0xffffffffn ? Number(thr) : Infinity;
    const kept = keys instanceof Uint32Array ? (j: number) => keys[j]! >= small : (j: number) => keys[j]! >= thr;
    return { d, kept };
  });
}

/** Sums of the kept deltas in model order (the elected signs), and how many are positive and negative. */
function trimmedSums(dtype: DType, deltas: ReturnType<typeof trimmedDeltas>, n: number): { sums: Float32Array | Float64Array; positive: number; negative: number } {
  const r = dtype !== 'F64' ? Math.fround : (x: number) => x;
  const sums = dtype !== 'F64' ? new Float32Array(n) : new Float64Array(n);
  let positive = 0, negative = 0;
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (const { d, kept } of deltas) if (kept(j)) s = r(s + d[j]!);
    sums[j] = s;
    if (s > 0) positive++;
    else if (s < 0) negative++;
  }
  return { sums, positive, negative };
}

/** TIES' sign census on a block: how many elements' kept deltas sum to a positive and to a negative value. */
export function tiesSigns(dtype: DType, base: Uint8Array, models: Uint8Array[], thresholds: bigint[]): [number, number] {
  const { positive, negative } = trimmedSums(dtype, trimmedDeltas(dtype, base, models, thresholds), count(base, dtype));
  return [positive, negative];
}

/** Adds model `model`'s counts of key bits [shift, shift + 16) among keys whose higher bits equal `prefix`. */
export function tiesHistogram(dtype: DType, base: Uint8Array, model: Uint8Array, shift: number, prefix: bigint, hist: BigUint64Array): void {
  const keys = magnitudeKeys(trimmedDeltas(dtype, base, [model], [0n])[0]!.d);
  const s = BigInt(shift);
  for (let j = 0; j < keys.length; j++) {
    const k = BigInt(keys[j]!);
    if (k >> (s + 16n) === prefix) hist[Number((k >> s) & 0xffffn)]! += 1n;
  }
}

/** TIES on a block, with the tensor's thresholds and majority sign (see ties). */
export function tiesMerge(dtype: DType, base: Uint8Array, models: Uint8Array[], thresholds: bigint[], majority: 1 | -1, lambda: number, out: Uint8Array): void {
  base = apartFrom(base, out);
  const single = dtype !== 'F64';
  const r = single ? Math.fround : (x: number) => x;
  const o = floatValues(base, dtype);
  const n = o.length;
  const deltas = trimmedDeltas(dtype, base, models, thresholds);
  const { sums } = trimmedSums(dtype, deltas, n);
  const lam = r(lambda);
  const res = single ? new Float32Array(n) : new Float64Array(n);
  const untouched: number[] = [];
  for (let j = 0; j < n; j++) {
    const s = sums[j]!;
    if (Number.isNaN(s)) {
      res[j] = r(o[j]! + r(lam * s));
      continue;
    }
    const sign = s > 0 ? 1 : s < 0 ? -1 : majority;
    let picked = 0, taken = 0;
    for (const { d, kept } of deltas) {
      const x = d[j]!;
      if (kept(j) && (sign > 0 ? x > 0 : x < 0)) {
        picked = taken ? r(picked + x) : x;
        taken++;
      }
    }
    if (taken === 0) untouched.push(j);
    else res[j] = r(o[j]! + r(lam * r(picked / taken)));
  }
  storeValues(res, dtype, out);
  const w = DTYPE_SIZE[dtype];
  for (const j of untouched) out.set(base.subarray(j * w, (j + 1) * w), j * w);
}

// ---- linear algebra ----------------------------------------------------------------------------

/** y = M x, or y = M^T x when transpose; M is rows x cols, row-major; sums in f64. */
export function matvec(dtype: DType, matrix: Uint8Array, rows: number, cols: number, x: Float64Array, transpose: boolean): Float64Array {
  const m = floatValues(matrix, dtype);
  const y = new Float64Array(transpose ? cols : rows);
  for (let r = 0; r < rows; r++) {
    if (transpose) {
      const xr = x[r]!;
      for (let c = 0; c < cols; c++) y[c]! += m[r * cols + c]! * xr;
    } else {
      let acc = 0;
      for (let c = 0; c < cols; c++) acc += m[r * cols + c]! * x[c]!;
      y[r] = acc;
    }
  }
  return y;
}

/**
 * Elements [start, start + out.length) of `w` as f32 values, exactly, into `out`. F32 weights are
 * copied; F16 and BF16 are widened as tensor conversion (toF32) widens them.
 */
export function widenWeights(w: Weights, start: number, out: Float32Array): Float32Array {
  const n = out.length;
  if (w.dtype === 'F32') {
    out.set(w.data.subarray(start, start + n));
    return out;
  }
  const bits = new Uint32Array(out.buffer, out.byteOffset, n), h = w.data;
  if (w.dtype === 'BF16') {
    for (let j = 0; j < n; j++) bits[j] = h[start + j]! << 16;
  } else {
    const t = f16Bits();
    for (let j = 0; j < n; j++) bits[j] = t[h[start + j]!]!;
  }
  return out;
}

/**
 * y[r][o] = bias[o] + sum_i x[r][i] * w[o][i]: a batch of rows through a linear layer whose weight is
 * stored as PyTorch's nn.Linear keeps it ([out, in], row-major). f32 in and out, accumulated in f64 here
 * (the oracle); native kernels accumulate in f32 and are compared with a named tolerance. An F16/BF16
 * weight row is widened once, then summed exactly as an F32 row would be.
 */
export function matmul(x: Float32Array, w: Weights, rows: number, inDim: number, outDim: number, bias: Float32Array | null, out: Float32Array): Float32Array {
  const widened = w.dtype === 'F32' ? null : new Float32Array(inDim);
  for (let o = 0; o < outDim; o++) {
    const wo = o * inDim;
    const wr = widened ? widenWeights(w, wo, widened) : w.data.subarray(wo, wo + inDim);
    for (let r = 0; r < rows; r++) {
      const xo = r * inDim;
      let acc = 0;
      for (let i = 0; i < inDim; i++) acc += x[xo + i]! * wr[i]!;
      out[r * outDim + o] = acc + (bias ? bias[o]! : 0);
    }
  }
  return out;
}

// ---- the inference engine's activations and attention ----------------------------------------------

export type ActivationName = 'gelu' | 'gelu_tanh' | 'silu';

/** erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), in f64. */
function erf(v: number): number {
  const a = Math.abs(v);
  const t = 1 / (1 + 0.3275911 * a);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return Math.sign(v) * (1 - poly * Math.exp(-a * a));
}

/**
 * In place: gelu = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); gelu_tanh = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)));
 * silu = x / (1 + e^-x). Computed in f64 with Math.tanh / Math.exp, rounded once to f32.
 */
export function activation(x: Float32Array, fn: ActivationName): Float32Array {
  const c = Math.sqrt(2 / Math.PI);
  for (let j = 0; j < x.length; j++) {
    const v = x[j]!;
    x[j] = fn === 'silu' ? v / (1 + Math.exp(-v))
      : fn === 'gelu_tanh' ? 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)))
        : 0.5 * v * (1 + erf(v / Math.SQRT2));
  }
  return x;
}

export interface AttentionArgs {
  /** [rows x heads*headDim] */
  q: Float32Array;
  /** [rows x kvHeads*headDim]; query head h reads key/value head floor(h / (heads / kvHeads)). */
  k: Float32Array;
  v: Float32Array;
  /** Packed sequences: attention never crosses from one to another. */
  seqs: readonly { start: number; length: number }[];
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Scores are scale * q.k. */
  scale: number;
  /** Token i sees tokens j <= i only... */
  causal: boolean;
  /** ...and with a window, only j > i - window; null for none. */
  window: number | null;
  /** [rows x heads*headDim] */
  out: Float32Array;
}

/** out_i = sum_j softmax_j(scale q_i.k_j) v_j per sequence and head, in f64. */
export function attention(a: AttentionArgs): Float32Array {
  const { q, k, v, heads, kvHeads, headDim: D, scale, out } = a;
  const qs = heads * D, kvs = kvHeads * D, group = heads / kvHeads;
  for (const seq of a.seqs) {
    const p = new Float64Array(seq.length);
    for (let h = 0; h < heads; h++) {
      const kv = Math.floor(h / group) * D;
      for (let i = 0; i < seq.length; i++) {
        const hi = a.causal ? i + 1 : seq.length;
        const lo = a.causal && a.window !== null ? Math.max(0, i - a.window + 1) : 0;
        const qo = (seq.start + i) * qs + h * D;
        let max = -Infinity;
        for (let j = lo; j < hi; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qo + d]! * k[(seq.start + j) * kvs + kv + d]!;
          p[j] = dot * scale;
          max = Math.max(max, p[j]!);
        }
        let sum = 0;
        for (let j = lo; j < hi; j++) sum += (p[j] = Math.exp(p[j]! - max));
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = lo; j < hi; j++) acc += p[j]! * v[(seq.start + j) * kvs + kv + d]!;
          out[(seq.start + i) * qs + h * D + d] = acc / sum;
        }
      }
    }
  }
  return out;
}

/**
 * Per row of `dim`: layernorm (x - mean) / sqrt(var + eps) * weight + bias (biased variance), or with
 * rms x / sqrt(mean(x^2) + eps) * weight. Sums in f64. `out` may be `x`.
 */
export function norm(x: Float32Array, rows: number, dim: number, weight: Float32Array, bias: Float32Array | null, eps: number,
  rms: boolean, out: Float32Array): Float32Array {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let mean = 0;
    if (!rms) {
      for (let i = 0; i < dim; i++) mean += x[o + i]!;
      mean /= dim;
    }
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += (x[o + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[o + i] = (x[o + i]! - mean) * inv * weight[i]! + (bias ? bias[i]! : 0);
  }
  return out;
}
