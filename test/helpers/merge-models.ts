// Owns the test oracle for merges: float tensors with sensible values (not random bit patterns), edits
// that fine-tune the way real training does (a sparse diff-pruning mask, whole tensors, every element),
// and the expected result of a three-way merge computed INDEPENDENTLY of src/: values decoded here,
// formulas written out as plain float64 loops from the papers, and one rounding to the dtype at the end.
//
// Usage:
//   const base = floatTensor('w', 'BF16', [64, 32], 'seed');
//   const ours = editValues(base, pickIndices(...), 'ours', 0.02);
//   const want = expectedMerge(base.dtype, base.data, ours.data, theirs.data, { name: 'ties', density: 0.2 });
//   expect(mergeMismatches(actualBytes, want)).toEqual([]);

import { Prng, type TensorInput } from './models.js';

export type FloatDType = 'F64' | 'F32' | 'F16' | 'BF16';

// ---- float formats, written out from IEEE 754 (never from src/) -----------------------------------

interface Format {
  bytes: number;
  /** Significant bits, the implicit one included. */
  precision: number;
  /** Exponent of the smallest normal number. */
  emin: number;
  emax: number;
}

const FORMATS: Record<FloatDType, Format> = {
  F64: { bytes: 8, precision: 53, emin: -1022, emax: 1023 },
  F32: { bytes: 4, precision: 24, emin: -126, emax: 127 },
  F16: { bytes: 2, precision: 11, emin: -14, emax: 15 },
  BF16: { bytes: 2, precision: 8, emin: -126, emax: 127 },
};

export function isFloat(dtype: string): dtype is FloatDType {
  return dtype in FORMATS;
}

export function elementBytes(dtype: FloatDType): number {
  return FORMATS[dtype].bytes;
}

/** floor(log2(m)) for a positive finite double, exactly (Math.log2 can be off by one near powers of 2). */
function exponentOf(m: number): number {
  let e = Math.floor(Math.log2(m));
  while (2 ** e > m) e--;
  while (2 ** (e + 1) <= m) e++;
  return e;
}

/** The spacing of the dtype's values around x (subnormal spacing below the normal range). */
export function ulp(dtype: FloatDType, x: number): number {
  const f = FORMATS[dtype];
  const m = Math.abs(x);
  const e = m === 0 || !Number.isFinite(m) ? f.emin : Math.max(exponentOf(m), f.emin);
  return 2 ** (e - (f.precision - 1));
}

/** Rounds a double to the nearest value of the dtype, ties to even, overflow to infinity. */
export function roundTo(dtype: FloatDType, x: number): number {
  if (dtype === 'F64' || x === 0 || !Number.isFinite(x)) return x;
  if (dtype === 'F32') return Math.fround(x);
  const f = FORMATS[dtype];
  const sign = x < 0 ? -1 : 1;
  const m = Math.abs(x);
  const q = ulp(dtype, m);
  const y = m / q; // exact: q is a power of two in range
  let k = Math.floor(y);
  const rest = y - k;
  if (rest > 0.5 || (rest === 0.5 && k % 2 === 1)) k++;
  const v = k * q;
  const maxFinite = (2 - 2 ** (1 - f.precision)) * 2 ** f.emax;
  return sign * (v > maxFinite ? Infinity : v);
}

function f16Bits(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const m = Math.abs(v);
  if (Number.isNaN(v)) return 0x7e00;
  if (m === Infinity) return sign | 0x7c00;
  if (m < 2 ** -14) return sign | (m / 2 ** -24);
  const e = exponentOf(m);
  return sign | ((e + 15) << 10) | ((m / 2 ** e - 1) * 1024);
}

function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (e === 0) return sign * man * 2 ** -24;
  if (e === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (e - 15);
}

/** Values (already representable in the dtype) to little-endian bytes. */
export function encode(dtype: FloatDType, values: ArrayLike<number>): Buffer {
  const n = values.length;
  const out = Buffer.alloc(n * FORMATS[dtype].bytes);
  for (let j = 0; j < n; j++) {
    const v = values[j]!;
    if (roundTo(dtype, v) !== v && !Number.isNaN(v)) throw new Error(`encode: ${v} is not a ${dtype} value`);
    switch (dtype) {
      case 'F64': out.writeDoubleLE(v, 8 * j); break;
      case 'F32': out.writeFloatLE(v, 4 * j); break;
      case 'F16': out.writeUInt16LE(f16Bits(v), 2 * j); break;
      case 'BF16': {
        const tmp = Buffer.alloc(4);
        tmp.writeFloatLE(v);
        out.writeUInt16LE(tmp.readUInt32LE() >>> 16, 2 * j);
        break;
      }
    }
  }
  return out;
}

export function decode(dtype: FloatDType, bytes: Uint8Array): Float64Array {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const w = FORMATS[dtype].bytes;
  const out = new Float64Array(b.length / w);
  const tmp = Buffer.alloc(4);
  for (let j = 0; j < out.length; j++) {
    switch (dtype) {
      case 'F64': out[j] = b.readDoubleLE(8 * j); break;
      case 'F32': out[j] = b.readFloatLE(4 * j); break;
      case 'F16': out[j] = f16Value(b.readUInt16LE(2 * j)); break;
      case 'BF16': tmp.writeUInt32LE(b.readUInt16LE(2 * j) << 16 >>> 0); out[j] = tmp.readFloatLE(); break;
    }
  }
  return out;
}

function sameBits(x: Uint8Array, y: Uint8Array, j: number, w: number): boolean {
  for (let k = j * w; k < (j + 1) * w; k++) if (x[k] !== y[k]) return false;
  return true;
}

// ---- tensors and fine-tuning edits ---------------------------------------------------------------

/** Values ±U[0.25, 1) rounded to the dtype: no zeros, no NaN, deltas against them stay exact in f32. */
export function floatTensor(name: string, dtype: FloatDType, shape: number[], seed: string): TensorInput {
  const n = shape.reduce((a, b) => a * b, 1);
  const prng = new Prng(`${seed}/${name}`);
  const v = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const u = 0.25 + 0.75 * (prng.nextU32() / 2 ** 32);
    v[j] = roundTo(dtype, prng.nextU32() & 1 ? -u : u);
  }
  return { name, dtype, shape, data: encode(dtype, v) };
}

/** A delta step that changes bits in this dtype: ~`scale` for F32/F64, a few ulps for 16-bit types. */
export function defaultScale(dtype: FloatDType): number {
  return dtype === 'F32' || dtype === 'F64' ? 1e-3 : dtype === 'BF16' ? 2e-2 : 4e-3;
}

/**
 * The tensor with deltas of about ±scale added at `indices` (every element when omitted); each edited
 * element is guaranteed to change its bits, every other element keeps them.
 */
export function editValues(t: TensorInput, seed: string, opts: { indices?: Iterable<number>; scale?: number } = {}): TensorInput {
  const dtype = t.dtype as FloatDType;
  const v = decode(dtype, t.data);
  const prng = new Prng(`${seed}/${t.name}`);
  const scale = opts.scale ?? defaultScale(dtype);
  const indices = opts.indices ?? v.keys();
  for (const j of indices) {
    const d = scale * (0.5 + prng.nextU32() / 2 ** 32) * (prng.nextU32() & 1 ? -1 : 1);
    let x = roundTo(dtype, v[j]! + d);
    if (x === v[j]) x = roundTo(dtype, v[j]! + (d < 0 ? -1 : 1) * ulp(dtype, v[j]!) * 1.5);
    v[j] = x;
  }
  return { ...t, shape: [...t.shape], data: encode(dtype, v) };
}

/** `groups` disjoint sets of `count` element indices each, out of n, chosen by seed. */
export function disjointIndices(n: number, count: number, groups: number, seed: string): number[][] {
  const prng = new Prng(seed);
  const order = Array.from({ length: n }, (_, j) => j);
  for (let j = n - 1; j > 0; j--) {
    const k = prng.below(j + 1);
    [order[j], order[k]] = [order[k]!, order[j]!];
  }
  return Array.from({ length: groups }, (_, g) => order.slice(g * count, (g + 1) * count).sort((a, b) => a - b));
}

/** Indices where two tensors' bit patterns differ. */
export function changedIndices(dtype: FloatDType, x: Uint8Array, y: Uint8Array): number[] {
  const w = FORMATS[dtype].bytes;
  const out: number[] = [];
  for (let j = 0; j < x.length / w; j++) if (!sameBits(x, y, j, w)) out.push(j);
  return out;
}

// ---- the oracle ----------------------------------------------------------------------------------

export type OracleStrategy =
  | { name: 'ours' }
  | { name: 'theirs' }
  | { name: 'base' }
  | { name: 'average'; weights?: [number, number] }
  | { name: 'task-arithmetic'; lambda?: number }
  | { name: 'ties'; density?: number; lambda?: number }
  | { name: 'slerp'; t?: number };

/** mergekit's and our threshold: above this |cos| SLERP falls back to linear interpolation. */
export const SLERP_PARALLEL = 0.9995;

/**
 * The strategy's value for every element of whole tensors, in float64, from the published definitions:
 * - task arithmetic (Ilharco et al. 2023): o + λ Σ_i (t_i − o);
 * - average: (w_a a + w_b b) / (w_a + w_b);
 * - TIES (Yadav et al. 2023; their released code for the details): per tensor, keep each task vector's
 *   entries whose |δ| is at least its k-th largest, k = floor(density·n); elect the sign of the sum of
 *   kept deltas (where that sum is exactly 0, the sign most elements elected); λ times the mean of the
 *   kept deltas that agree with the elected sign (0 when none does) added to o;
 * - SLERP (Shoemake 1985) between the flattened tensors a (t=0) and b (t=1), linear when nearly parallel.
 */
export function strategyValues(s: OracleStrategy, o: Float64Array, a: Float64Array, b: Float64Array): { values: Float64Array; scale: Float64Array } {
  const n = o.length;
  const out = new Float64Array(n);
  // The largest magnitude among the formula's terms: where they cancel, rounding errors are relative to it.
  const scale = new Float64Array(n);
  const term = (j: number, ...xs: number[]) => {
    for (const x of xs) scale[j] = Math.max(scale[j]!, Math.abs(x));
  };
  switch (s.name) {
    case 'ours': out.set(a); break;
    case 'theirs': out.set(b); break;
    case 'base': out.set(o); break;
    case 'average': {
      const [wa, wb] = s.weights ?? [0.5, 0.5];
      for (let j = 0; j < n; j++) {
        out[j] = (wa * a[j]! + wb * b[j]!) / (wa + wb);
        term(j, (wa * a[j]!) / (wa + wb), (wb * b[j]!) / (wa + wb));
      }
      break;
    }
    case 'task-arithmetic': {
      const lambda = s.lambda ?? 1;
      for (let j = 0; j < n; j++) {
        out[j] = o[j]! + lambda * ((a[j]! - o[j]!) + (b[j]! - o[j]!));
        term(j, o[j]!, a[j]!, b[j]!);
      }
      break;
    }
    case 'ties': {
      const density = s.density ?? 0.2;
      const lambda = s.lambda ?? 1;
      const deltas = [a, b].map((t) => Float64Array.from(t, (x, j) => x - o[j]!));
      const k = Math.floor(density * n);
      const kept = deltas.map((d) => {
        if (k <= 0) return () => false;
        const threshold = Array.from(d, Math.abs).sort((x, y) => y - x)[k - 1]!;
        return (j: number) => Math.abs(d[j]!) >= threshold;
      });
      const sums = new Float64Array(n);
      let positive = 0, negative = 0;
      for (let j = 0; j < n; j++) {
        for (let i = 0; i < 2; i++) if (kept[i]!(j)) sums[j]! += deltas[i]![j]!;
        if (sums[j]! > 0) positive++;
        else if (sums[j]! < 0) negative++;
      }
      const majority = positive >= negative ? 1 : -1;
      for (let j = 0; j < n; j++) {
        const sign = sums[j]! > 0 ? 1 : sums[j]! < 0 ? -1 : majority;
        let total = 0, count = 0;
        for (let i = 0; i < 2; i++) {
          const d = deltas[i]![j]!;
          if (kept[i]!(j) && d * sign > 0) {
            total += d;
            count++;
          }
        }
        out[j] = count ? o[j]! + lambda * (total / count) : o[j]!;
        term(j, o[j]!, a[j]!, b[j]!);
      }
      break;
    }
    case 'slerp': {
      const t = s.t ?? 0.5;
      let ab = 0, aa = 0, bb = 0;
      for (let j = 0; j < n; j++) {
        ab += a[j]! * b[j]!;
        aa += a[j]! * a[j]!;
        bb += b[j]! * b[j]!;
      }
      const cos = aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 1;
      let [ca, cb] = [1 - t, t];
      if (Math.abs(cos) <= SLERP_PARALLEL) {
        const theta = Math.acos(cos);
        ca = Math.sin((1 - t) * theta) / Math.sin(theta);
        cb = Math.sin(t * theta) / Math.sin(theta);
      }
      for (let j = 0; j < n; j++) {
        out[j] = ca * a[j]! + cb * b[j]!;
        term(j, ca * a[j]!, cb * b[j]!);
      }
      break;
    }
  }
  for (let j = 0; j < n; j++) term(j, out[j]!);
  return { values: out, scale };
}

export interface ExpectedMerge {
  dtype: FloatDType;
  /** The merged tensor: exact bits outside conflicts, the strategy's value rounded once inside. */
  data: Buffer;
  /** Element is changed on both sides to different bits. */
  conflict: boolean[];
  /** Per element, the largest magnitude among the formula's terms (see mergeMismatches). */
  scale: Float64Array;
  conflicts: number;
  changedOurs: number;
  changedTheirs: number;
}

/** DESIGN.md "Merge semantics" per element: one-sided changes exactly, the strategy only at conflicts. */
export function expectedMerge(dtype: FloatDType, o: Uint8Array, a: Uint8Array, b: Uint8Array, strategy: OracleStrategy): ExpectedMerge {
  const w = FORMATS[dtype].bytes;
  const n = o.length / w;
  const { values, scale } = strategyValues(strategy, decode(dtype, o), decode(dtype, a), decode(dtype, b));
  const data = Buffer.alloc(o.length);
  const conflict: boolean[] = new Array(n).fill(false);
  let conflicts = 0, changedOurs = 0, changedTheirs = 0;
  for (let j = 0; j < n; j++) {
    const ca = !sameBits(a, o, j, w), cb = !sameBits(b, o, j, w);
    if (ca) changedOurs++;
    if (cb) changedTheirs++;
    const from = !ca ? b : !cb ? a : sameBits(a, b, j, w) ? a : null;
    if (from) data.set(from.subarray(j * w, (j + 1) * w), j * w);
    else {
      conflict[j] = true;
      conflicts++;
      encode(dtype, [roundTo(dtype, values[j]!)]).copy(data, j * w);
    }
  }
  return { dtype, data, conflict, scale, conflicts, changedOurs, changedTheirs };
}

/**
 * Allowed distance between the merge's value at a conflicting element and the oracle's once-rounded
 * float64 value, in ulps of the larger of: the result in its dtype, and the formula's largest term in
 * the kernels' compute type (f32, f64 for F64). The kernels round after every operation, so a few
 * operations can move the last bit either way, and where terms cancel (slerp, average of opposite
 * signs) that last bit is the terms' last bit.
 */
export const ARITHMETIC_ULPS = 2;

/** Allowed |actual - expected| at element j of a conflicting element. */
export function tolerance(want: ExpectedMerge, j: number, expected: number, ulps: number): number {
  const compute: FloatDType = want.dtype === 'F64' ? 'F64' : 'F32';
  return ulps * Math.max(ulp(want.dtype, expected), ulp(compute, want.scale[j]!));
}

/**
 * Every element checked: bit-exact outside conflicts, within `ulps` of the oracle at conflicts. Returns
 * the first few mismatches and their total, [] when the tensor is right.
 */
export function mergeMismatches(actual: Uint8Array, want: ExpectedMerge, ulps = ARITHMETIC_ULPS): string[] {
  const { dtype } = want;
  const w = FORMATS[dtype].bytes;
  if (actual.length !== want.data.length) return [`${actual.length} bytes, expected ${want.data.length}`];
  const got = decode(dtype, actual), exp = decode(dtype, want.data);
  const bad: string[] = [];
  for (let j = 0; j < got.length; j++) {
    if (!want.conflict[j]) {
      if (!sameBits(actual, want.data, j, w)) bad.push(`element ${j} (not conflicting): ${got[j]} != ${exp[j]} exactly`);
    } else if (!(Math.abs(got[j]! - exp[j]!) <= tolerance(want, j, exp[j]!, ulps))) {
      bad.push(`element ${j} (conflicting): ${got[j]} vs ${exp[j]} (more than ${ulps} ulp apart)`);
    }
  }
  return bad.length > 5 ? [...bad.slice(0, 5), `... ${bad.length} of ${got.length} elements wrong`] : bad;
}

// ---- reading a checkpoint back (a minimal safetensors reader, independent of src/format) ----------

export interface ReadTensor {
  dtype: string;
  shape: number[];
  data: Buffer;
}

export function readCheckpoint(file: Uint8Array): { header: Buffer; metadata: Record<string, string> | null; tensors: Map<string, ReadTensor> } {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const n = Number(buf.readBigUInt64LE(0));
  const header = buf.subarray(8, 8 + n);
  const json = JSON.parse(header.toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const tensors = new Map<string, ReadTensor>();
  let metadata: Record<string, string> | null = null;
  for (const [name, info] of Object.entries(json)) {
    if (name === '__metadata__') {
      metadata = info as unknown as Record<string, string>;
      continue;
    }
    const [begin, end] = info.data_offsets;
    tensors.set(name, { dtype: info.dtype, shape: info.shape, data: buf.subarray(8 + n + begin, 8 + n + end) });
  }
  return { header, metadata, tensors };
}

/** Replaces tensors by name (the list keeps its order). */
export function withTensors(list: readonly TensorInput[], replacements: TensorInput[]): TensorInput[] {
  const byName = new Map(replacements.map((t) => [t.name, t]));
  for (const name of byName.keys()) if (!list.some((t) => t.name === name)) throw new Error(`no tensor named ${name}`);
  return list.map((t) => byName.get(t.name) ?? t);
}

// ---- DARE: random by design, so checked by what each element may be --------------------------------

/**
 * DARE (Yu et al. 2023) with task arithmetic keeps each delta with probability `density` and rescales
 * it by 1/density, so each conflicting element must be one of o, o + λdA/p, o + λdB/p, o + λ(dA+dB)/p.
 * Returns mismatches (as mergeMismatches) and, per side, how many conflicting elements kept its delta.
 */
export function dareCheck(dtype: FloatDType, o: Uint8Array, a: Uint8Array, b: Uint8Array, actual: Uint8Array, density: number, lambda = 1):
  { mismatches: string[]; conflicts: number; keptOurs: number; keptTheirs: number } {
  const want = expectedMerge(dtype, o, a, b, { name: 'base' });
  const w = FORMATS[dtype].bytes;
  const [vo, va, vb, got] = [decode(dtype, o), decode(dtype, a), decode(dtype, b), decode(dtype, actual)];
  const bad: string[] = [];
  let keptOurs = 0, keptTheirs = 0;
  for (let j = 0; j < got.length; j++) {
    if (!want.conflict[j]) {
      if (!sameBits(actual, want.data, j, w)) bad.push(`element ${j} (not conflicting): ${got[j]} != ${decode(dtype, want.data)[j]} exactly`);
      continue;
    }
    const [x, dA, dB] = [vo[j]!, (lambda * (va[j]! - vo[j]!)) / density, (lambda * (vb[j]! - vo[j]!)) / density];
    const options = [[0, 0, x], [1, 0, x + dA], [0, 1, x + dB], [1, 1, x + dA + dB]] as const;
    const scale = Math.max(Math.abs(x), Math.abs(x + dA), Math.abs(x + dB));
    const compute: FloatDType = dtype === 'F64' ? 'F64' : 'F32';
    const match = options.find(([, , v]) => Math.abs(got[j]! - roundTo(dtype, v)) <= ARITHMETIC_ULPS * Math.max(ulp(dtype, v), ulp(compute, scale)));
    if (!match) bad.push(`element ${j}: ${got[j]} is none of ${options.map((c) => roundTo(dtype, c[2])).join(', ')}`);
    else {
      keptOurs += match[0];
      keptTheirs += match[1];
    }
  }
  return { mismatches: bad.slice(0, 5), conflicts: want.conflicts, keptOurs, keptTheirs };
}

// ---- e2e: branches that fine-tune one base -----------------------------------------------------------

/** The minimal slice of test/helpers/repo.ts's Repo these helpers use (a type: nothing is imported). */
interface RepoLike {
  write(rel: string, data: Uint8Array | string): void;
  commit(paths: string[], message: string): void;
  git(args: string[], opts?: { allowFail?: boolean }): { status: number };
}

/**
 * Commits `base` files on main, then `theirs` on branch `task-b` and `ours` on main, as two people
 * fine-tuning one checkpoint would. Leaves main checked out (HEAD = ours).
 */
export function commitFineTunes(repo: RepoLike, files: { base: Record<string, Uint8Array | string>; ours: Record<string, Uint8Array | string>; theirs: Record<string, Uint8Array | string> }): void {
  const put = (set: Record<string, Uint8Array | string>, message: string) => {
    for (const [p, data] of Object.entries(set)) repo.write(p, data);
    repo.commit(Object.keys(set), message);
  };
  put(files.base, 'base model');
  repo.git(['switch', '-q', '-c', 'task-b']);
  put(files.theirs, 'fine-tune for task B');
  repo.git(['switch', '-q', 'main']);
  put(files.ours, 'fine-tune for task A');
}
