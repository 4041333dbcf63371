// The tensor kernels of git-tensor: change masks, three-way classification, diff statistics, merges,
// dtype conversion and matvec. Every function takes tensor bytes (any ArrayBufferView, any offset,
// little-endian) plus a safetensors dtype name, and returns a Promise: native kernels run off the JS
// thread on all cores; without the addon the TypeScript reference kernels run (synchronously).
// Exact definitions (rounding, NaN, the DARE PRNG) are in docs/kernels.md.
//
// Merges compute in f32 for F32/F16/BF16 tensors and in f64 for F64, round the result to the tensor's
// dtype (nearest, ties to even), and give the same bits with every implementation.
//
// Usage:
//   const { count, mask } = await changeMask(oldBytes, newBytes, 'BF16');
//   const merged = await ties({ base, models: [a, b], density: 0.2, lambda: 1, dtype: 'F16' });

import os from 'node:os';

import { backend, type NativeAddon } from './addon.js';
import * as ref from './reference.js';
import {
  CLASSIFY3_KEYS, DTYPE_SIZE, isDType, isFloatDType, type Classify3Counts, type Classify3Masks, type CombineMode,
  type DiffStats, type DType, type TensorData, type Weights,
} from './types.js';

export {
  DTYPE_SIZE, isDType, isFloatDType, type Classify3Counts, type Classify3Masks, type DiffStats, type DType, type FloatDType,
  type TensorData, type Weights,
} from './types.js';
export { widenWeights } from './reference.js';

/** A Float32Array as F32 Weights; Weights as they are. */
export function asWeights(w: Float32Array | Weights): Weights {
  return w instanceof Float32Array ? { dtype: 'F32', data: w } : w;
}

/** Per-call overrides, mostly for tests and benchmarks. */
export interface RunOptions {
  /** A name from kernelInfo().supported ('js' = the TypeScript reference); default: kernelInfo().active. */
  implementation?: string;
  /** Threads for one call; default GIT_TENSOR_THREADS or every core. */
  threads?: number;
}

export interface KernelInfo {
  /** The implementation used by default: 'avx512', 'avx2', 'neon', 'scalar' or 'js'. */
  active: string;
  /** Every implementation usable on this machine, best first. */
  supported: string[];
  addonLoaded: boolean;
  /** True when the CUDA addon is loaded and sees a GPU ('cuda' is then in `supported`). */
  cuda: boolean;
}

export function kernelInfo(): KernelInfo {
  const b = backend();
  return { active: b.active, supported: [...b.supported], addonLoaded: b.addon !== null, cuda: b.supported.includes('cuda') };
}

// ---- argument handling -------------------------------------------------------------------------

function bytesOf(data: TensorData, what: string): Uint8Array {
  if (!ArrayBuffer.isView(data)) throw new TypeError(`${what} must be a Buffer, typed array or DataView`);
  return data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function checkDType(dtype: string, float = false): DType {
  if (!isDType(dtype)) throw new TypeError(`unknown dtype ${dtype}`);
  if (float && !isFloatDType(dtype)) throw new TypeError(`this kernel needs a float dtype (F64, F32, F16, BF16), not ${dtype}`);
  return dtype;
}

function elementCount(bytes: Uint8Array, dtype: DType, what: string): number {
  if (bytes.byteLength % DTYPE_SIZE[dtype] !== 0) {
    throw new RangeError(`${what}: ${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  return bytes.byteLength / DTYPE_SIZE[dtype];
}

function sameSize(list: Uint8Array[], what: string): void {
  for (const b of list) {
    if (b.byteLength !== list[0]!.byteLength) throw new RangeError(`${what}: tensors differ in size (${b.byteLength} vs ${list[0]!.byteLength} bytes)`);
  }
}

function outputFor(out: TensorData | undefined, bytes: number): Uint8Array {
  if (!out) return new Uint8Array(bytes);
  const o = bytesOf(out, 'out');
  if (o.byteLength !== bytes) throw new RangeError(`out has ${o.byteLength} bytes, expected ${bytes}`);
  return o;
}

interface Runner {
  addon: NativeAddon | null;
  impl: string;
  threads: number;
}

function defaultThreads(): number {
  const env = Number(process.env.GIT_TENSOR_THREADS);
  return Number.isInteger(env) && env > 0 ? env : os.availableParallelism();
}

function runner(opts: RunOptions | undefined): Runner {
  const b = backend();
  const impl = opts?.implementation ?? b.active;
  if (!b.supported.includes(impl)) throw new Error(`kernel implementation '${impl}' is not available (supported: ${b.supported.join(', ')})`);
  return { addon: impl === 'js' ? null : b.addon, impl, threads: opts?.threads ?? defaultThreads() };
}

// ---- bitwise kernels ---------------------------------------------------------------------------

/** Elements whose bit patterns differ, as a packed bitmap (element j: byte j >> 3, bit j & 7), and their count. */
export async function changeMask(a: TensorData, b: TensorData, dtype: string, opts?: RunOptions): Promise<{ mask: Uint8Array; count: number }> {
  const dt = checkDType(dtype);
  const x = bytesOf(a, 'a'), y = bytesOf(b, 'b');
  sameSize([x, y], 'changeMask');
  const mask = new Uint8Array(Math.ceil(elementCount(x, dt, 'a') / 8));
  const r = runner(opts);
  const count = r.addon ? await r.addon.changeMask(r.impl, r.threads, dt, x, y, mask) : ref.changeMask(x, y, dt, mask);
  return { mask, count };
}

export interface Classify3Result {
  counts: Classify3Counts;
  masks: Classify3Masks;
}

/** Three-way classification of base o against ours a and theirs b; see Classify3Masks. */
export async function classify3(o: TensorData, a: TensorData, b: TensorData, dtype: string, opts?: RunOptions): Promise<Classify3Result> {
  const dt = checkDType(dtype);
  const bo = bytesOf(o, 'o'), ba = bytesOf(a, 'a'), bb = bytesOf(b, 'b');
  sameSize([bo, ba, bb], 'classify3');
  const maskBytes = Math.ceil(elementCount(bo, dt, 'o') / 8);
  const list = CLASSIFY3_KEYS.map(() => new Uint8Array(maskBytes));
  const masks = Object.fromEntries(CLASSIFY3_KEYS.map((k, i) => [k, list[i]!])) as unknown as Classify3Masks;
  const r = runner(opts);
  if (!r.addon) return { counts: ref.classify3(bo, ba, bb, dt, masks), masks };
  const c = await r.addon.classify3(r.impl, r.threads, dt, bo, ba, bb, list);
  const counts = Object.fromEntries(CLASSIFY3_KEYS.map((k, i) => [k, c[i]!])) as unknown as Classify3Counts;
  return { counts, masks };
}

/** out = mask bit set ? b : a, element by element, bit for bit (the exact-union step of a merge). */
export async function maskedCombine(
  args: { a: TensorData; b: TensorData; mask: Uint8Array; dtype: string; out?: TensorData },
  opts?: RunOptions,
): Promise<Uint8Array> {
  const dt = checkDType(args.dtype);
  const x = bytesOf(args.a, 'a'), y = bytesOf(args.b, 'b');
  sameSize([x, y], 'maskedCombine');
  const n = elementCount(x, dt, 'a');
  if (args.mask.byteLength < Math.ceil(n / 8)) throw new RangeError(`maskedCombine: mask has ${args.mask.byteLength} bytes, ${Math.ceil(n / 8)} needed`);
  const out = outputFor(args.out, x.byteLength);
  const r = runner(opts);
  if (r.addon) await r.addon.select(r.impl, r.threads, dt, x, y, args.mask, out);
  else ref.select(x, y, args.mask, dt, out);
  return out;
}

// ---- statistics --------------------------------------------------------------------------------

/** One pass over two tensors of the same shape; see DiffStats. */
export async function diffStats(a: TensorData, b: TensorData, dtype: string, opts?: RunOptions): Promise<DiffStats> {
  const dt = checkDType(dtype);
  const x = bytesOf(a, 'a'), y = bytesOf(b, 'b');
  sameSize([x, y], 'diffStats');
  elementCount(x, dt, 'a');
  const r = runner(opts);
  return r.addon ? r.addon.diffStats(r.impl, r.threads, dt, x, y) : ref.diffStats(x, y, dt);
}

/**
 * Elements per block of the addon's reductions (native/src/ops.h kBlockElements): diffStats of a tensor
 * adds its blocks' statistics in order, so combineDiffStats of these blocks' gives the same sums.
 */
export const REDUCTION_BLOCK_ELEMENTS = 1 << 18;

/** Adds statistics of consecutive blocks of one tensor (for callers that stream a tensor in pieces). */
export function combineDiffStats(parts: DiffStats[]): DiffStats {
  const s = ref.emptyStats();
  for (const p of parts) {
    s.sumA2 += p.sumA2;
    s.sumB2 += p.sumB2;
    s.sumAB += p.sumAB;
    s.sumD2 += p.sumD2;
    s.maxAbsDiff = Math.max(s.maxAbsDiff, p.maxAbsDiff);
    s.changed += p.changed;
    s.signFlips += p.signFlips;
    s.nanA += p.nanA;
    s.nanB += p.nanB;
    s.infA += p.infA;
    s.infB += p.infB;
  }
  return s;
}

// ---- conversions -------------------------------------------------------------------------------

/** Exact widening of a float tensor (F64 rounds to nearest even) to f32, into `out` when given. */
export async function toF32(src: TensorData, dtype: string, out?: Float32Array, opts?: RunOptions): Promise<Float32Array> {
  const dt = checkDType(dtype, true);
  const s = bytesOf(src, 'src');
  const n = elementCount(s, dt, 'src');
  if (out && out.length !== n) throw new RangeError(`toF32: out has ${out.length} elements, expected ${n}`);
  const r = runner(opts);
  if (!r.addon) {
    const wide = ref.toF32(s, dt);
    if (!out) return wide;
    out.set(wide);
    return out;
  }
  const dst = out ?? new Float32Array(n);
  await r.addon.toF32(r.impl, r.threads, dt, s, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength));
  return dst;
}

/** f32 values to a float dtype, rounding to nearest even (NaNs stay NaN, overflow goes to Inf), into `out` when given. */
export async function fromF32(src: Float32Array, dtype: string, out?: TensorData, opts?: RunOptions): Promise<Uint8Array> {
  const dt = checkDType(dtype, true);
  const dst = outputFor(out, src.length * DTYPE_SIZE[dt]);
  const r = runner(opts);
  if (r.addon) await r.addon.fromF32(r.impl, r.threads, dt, new Uint8Array(src.buffer, src.byteOffset, src.byteLength), dst);
  else ref.fromF32(src, dt, dst);
  return dst;
}

// ---- merges ------------------------------------------------------------------------------------

interface MergeCommon {
  dtype: string;
  /** Where to write the result (same byte size as the inputs); a new Uint8Array when omitted. */
  out?: TensorData;
}

async function runCombine(
  mode: CombineMode, dtype: string, base: TensorData | null, models: TensorData[], coeffs: number[],
  seed: bigint, keepBelow: number, outArg: TensorData | undefined, opts: RunOptions | undefined, streamFirst = 0,
): Promise<Uint8Array> {
  const dt = checkDType(dtype, true);
  if (models.length === 0) throw new RangeError('at least one model is needed');
  const ms = models.map((m, i) => bytesOf(m, `models[${i}]`));
  const o = base === null ? null : bytesOf(base, 'base');
  sameSize(o ? [o, ...ms] : ms, mode);
  elementCount(ms[0]!, dt, 'models[0]');
  const out = outputFor(outArg, ms[0]!.byteLength);
  const r = runner(opts);
  if (r.addon) await r.addon.combine(r.impl, r.threads, dt, mode, o, ms, coeffs, seed, keepBelow, out, streamFirst);
  else ref.combine({ mode, dtype: dt, base: o, models: ms, coeffs, seed, keepBelow, streamFirst }, out);
  return out;
}

function weightsFor(weights: number[] | undefined, count: number): number[] {
  const w = weights ?? new Array<number>(count).fill(1);
  if (w.length !== count) throw new RangeError(`${w.length} weights for ${count} models`);
  return w;
}

/** Task arithmetic (Ilharco et al. 2023): o + sum_i (lambda * w_i) (t_i - o). */
export function taskArithmetic(
  args: MergeCommon & { base: TensorData; models: TensorData[]; weights?: number[]; lambda?: number },
  opts?: RunOptions,
): Promise<Uint8Array> {
  const lambda = args.lambda ?? 1;
  const coeffs = weightsFor(args.weights, args.models.length).map((w) => lambda * w);
  return runCombine('task', args.dtype, args.base, args.models, coeffs, 0n, 0, args.out, opts);
}

/** Weighted average: sum_i (w_i / sum w) t_i; equal weights by default. */
export function average(args: MergeCommon & { models: TensorData[]; weights?: number[] }, opts?: RunOptions): Promise<Uint8Array> {
  const w = weightsFor(args.weights, args.models.length);
  const total = w.reduce((s, x) => s + x, 0);
  if (!(total !== 0 && Number.isFinite(total))) throw new RangeError('average: the weights must have a finite, nonzero sum');
  return runCombine('linear', args.dtype, null, args.models, w.map((x) => x / total), 0n, 0, args.out, opts);
}

/**
 * DARE (Yu et al. 2023) with task arithmetic: each delta t_i - o is kept with probability `density`
 * (decided by a counter-based SplitMix64 stream of (seed, model, element): the same everywhere),
 * kept deltas are rescaled by 1/density, and o + sum_i lambda w_i kept_i is returned. `first`: the
 * element index of these bytes' first element in their tensor, when merging a tensor block by block.
 */
export function dare(
  args: MergeCommon & { base: TensorData; models: TensorData[]; density: number; seed: number | bigint; weights?: number[]; lambda?: number; first?: number },
  opts?: RunOptions,
): Promise<Uint8Array> {
  const { density } = args;
  if (!(density > 0 && density <= 1)) throw new RangeError(`dare: density must be in (0, 1], not ${density}`);
  const lambda = args.lambda ?? 1;
  const coeffs = weightsFor(args.weights, args.models.length).map((w) => (lambda * w) / density);
  const seed = BigInt.asUintN(64, BigInt(args.seed));
  return runCombine('dare', args.dtype, args.base, args.models, coeffs, seed, Math.floor(density * 2 ** 53), args.out, opts, args.first ?? 0);
}

/**
 * TIES-merging (Yadav et al. 2023), per tensor: trim each task vector t_i - o to its top
 * floor(density * n) magnitudes, elect each element's sign from the sum of the trimmed deltas, take
 * the mean of the trimmed deltas that agree with it, and return o + lambda * mean. Elements with no
 * agreeing delta keep o's bits.
 */
export async function ties(
  args: MergeCommon & { base: TensorData; models: TensorData[]; density: number; lambda?: number },
  opts?: RunOptions,
): Promise<Uint8Array> {
  const dt = checkDType(args.dtype, true);
  const { density } = args;
  if (!(density >= 0 && density <= 1)) throw new RangeError(`ties: density must be in [0, 1], not ${density}`);
  if (args.models.length === 0) throw new RangeError('at least one model is needed');
  const o = bytesOf(args.base, 'base');
  const ms = args.models.map((m, i) => bytesOf(m, `models[${i}]`));
  sameSize([o, ...ms], 'ties');
  const n = elementCount(o, dt, 'base');
  const keep = ms.map(() => Math.floor(density * n));
  const out = outputFor(args.out, o.byteLength);
  const lambda = args.lambda ?? 1;
  const r = runner(opts);
  if (r.addon) await r.addon.ties(r.impl, r.threads, dt, o, ms, keep, lambda, out);
  else ref.ties(dt, o, ms, keep, lambda, out);
  return out;
}

// TIES on a tensor streamed in blocks: the caller finds each model's threshold by radix selection,
// 16 key bits a pass over the tensor (tiesHistogram, see TIES_KEY_BITS), counts the elected signs
// (tiesSigns), then merges every block with the thresholds and the majority sign (tiesMerge). ties()
// above is the same three steps on a tensor in memory, and gives the same bits.

/** Bits of a TIES magnitude key: |d|'s f32 bits for F32/F16/BF16, f64 bits for F64. */
export const TIES_KEY_BITS = (dtype: string): number => (dtype === 'F64' ? 64 : 32);
/** The threshold that keeps none of a model's deltas. */
export const TIES_KEEP_NONE = ref.KEEP_NONE;

interface TiesBlock {
  dtype: string;
  base: TensorData;
  models: TensorData[];
}

function tiesBlock(args: TiesBlock, what: string): { dt: DType; o: Uint8Array; ms: Uint8Array[] } {
  const dt = checkDType(args.dtype, true);
  const o = bytesOf(args.base, 'base');
  const ms = args.models.map((m, i) => bytesOf(m, `models[${i}]`));
  if (ms.length === 0) throw new RangeError('at least one model is needed');
  sameSize([o, ...ms], what);
  elementCount(o, dt, 'base');
  return { dt, o, ms };
}

/** Adds to `hist` (65536 counts) model `model`'s key bits [shift, shift + 16) among keys whose higher bits are `prefix`. */
export async function tiesHistogram(args: TiesBlock & { model: number; shift: number; prefix: bigint; hist: BigUint64Array }, opts?: RunOptions): Promise<void> {
  const { dt, o, ms } = tiesBlock(args, 'tiesHistogram');
  if (args.hist.length !== 65536) throw new RangeError('tiesHistogram: hist must hold 65536 counts');
  const r = runner(opts);
  if (r.addon) await r.addon.tiesHistogram(r.impl, r.threads, dt, o, ms, args.model, args.shift, args.prefix, args.hist);
  else ref.tiesHistogram(dt, o, ms[args.model]!, args.shift, args.prefix, args.hist);
}

/** How many elements of the block have kept deltas summing to a positive, and to a negative, value. */
export async function tiesSigns(args: TiesBlock & { thresholds: bigint[] }, opts?: RunOptions): Promise<[number, number]> {
  const { dt, o, ms } = tiesBlock(args, 'tiesSigns');
  const r = runner(opts);
  if (!r.addon) return ref.tiesSigns(dt, o, ms, args.thresholds);
  const [positive, negative] = await r.addon.tiesSigns(r.impl, r.threads, dt, o, ms, BigUint64Array.from(args.thresholds));
  return [positive!, negative!];
}

/** TIES on one block, given the tensor's thresholds and majority sign. */
export async function tiesMerge(args: TiesBlock & MergeCommon & { thresholds: bigint[]; majority: 1 | -1; lambda?: number }, opts?: RunOptions): Promise<Uint8Array> {
  const { dt, o, ms } = tiesBlock(args, 'tiesMerge');
  const out = outputFor(args.out, o.byteLength);
  const lambda = args.lambda ?? 1;
  const r = runner(opts);
  if (r.addon) await r.addon.tiesMerge(r.impl, r.threads, dt, o, ms, BigUint64Array.from(args.thresholds), args.majority, lambda, out);
  else ref.tiesMerge(dt, o, ms, args.thresholds, args.majority, lambda, out);
  return out;
}

/** Above this |cos| the two tensors are treated as parallel and interpolated linearly (as mergekit). */
export const SLERP_PARALLEL_THRESHOLD = 0.9995;

/**
 * Spherical linear interpolation (Shoemake 1985) between whole tensors a (t = 0) and b (t = 1):
 * sin((1-t)θ)/sin θ · a + sin(tθ)/sin θ · b, θ the angle between them (over finite elements);
 * linear interpolation when they are (nearly) parallel or one is zero. `stats`: diffStats of the whole
 * a and b, when these bytes are one block of them (combineDiffStats of every block's).
 */
export async function slerp(args: MergeCommon & { a: TensorData; b: TensorData; t: number; stats?: DiffStats }, opts?: RunOptions): Promise<Uint8Array> {
  const { t } = args;
  const s = args.stats ?? (await diffStats(args.a, args.b, args.dtype, opts));
  const norms = Math.sqrt(s.sumA2) * Math.sqrt(s.sumB2);
  const cos = norms > 0 ? s.sumAB / norms : 1;
  let coeffs = [1 - t, t];
  if (Math.abs(cos) <= SLERP_PARALLEL_THRESHOLD) {
    const theta = Math.acos(cos);
    const sin = Math.sin(theta);
    coeffs = [Math.sin((1 - t) * theta) / sin, Math.sin(t * theta) / sin];
  }
  return runCombine('linear', args.dtype, null, [args.a, args.b], coeffs, 0n, 0, args.out, opts);
}

// ---- linear algebra ----------------------------------------------------------------------------

/** y = M x (or M^T x), M a rows x cols row-major float tensor; accumulated in f64. */
export async function matvec(
  args: { matrix: TensorData; rows: number; cols: number; dtype: string; x: Float64Array; transpose?: boolean },
  opts?: RunOptions,
): Promise<Float64Array> {
  const dt = checkDType(args.dtype, true);
  const m = bytesOf(args.matrix, 'matrix');
  const { rows, cols } = args;
  const transpose = args.transpose ?? false;
  if (elementCount(m, dt, 'matrix') !== rows * cols) throw new RangeError(`matvec: matrix is not ${rows} x ${cols}`);
  if (args.x.length !== (transpose ? rows : cols)) throw new RangeError(`matvec: x has ${args.x.length} elements`);
  const r = runner(opts);
  if (!r.addon) return ref.matvec(dt, m, rows, cols, args.x, transpose);
  const y = new Float64Array(transpose ? cols : rows);
  await r.addon.matvec(r.impl, r.threads, dt, m, rows, cols, args.x, y, transpose);
  return y;
}

/**
 * y = x W^T + bias for a batch of `rows` f32 rows: x is rows x inDim, W is outDim x inDim (nn.Linear's
 * layout), y is rows x outDim. The inference engine's one heavy kernel; see reference.matmul. Native
 * implementations accumulate in f32 with fused multiply-add (docs/kernels.md gives the error bound);
 * `out` must not overlap the inputs. Batch many rows per call: W is read once per call.
 * W is a Float32Array or Weights: F16/BF16 weights are widened to f32 as each piece is read, giving
 * bit for bit the result for the widened matrix.
 */
export async function matmul(
  args: { x: Float32Array; w: Float32Array | Weights; rows: number; inDim: number; outDim: number; bias?: Float32Array; out?: Float32Array },
  opts?: RunOptions,
): Promise<Float32Array> {
  const { x, rows, inDim, outDim } = args;
  const w = asWeights(args.w);
  if (x.length !== rows * inDim) throw new RangeError(`matmul: x has ${x.length} elements, expected ${rows} x ${inDim}`);
  if (w.data.length !== outDim * inDim) throw new RangeError(`matmul: w has ${w.data.length} elements, expected ${outDim} x ${inDim}`);
  if (args.bias && args.bias.length !== outDim) throw new RangeError(`matmul: bias has ${args.bias.length} elements, expected ${outDim}`);
  const out = args.out ?? new Float32Array(rows * outDim);
  if (out.length !== rows * outDim) throw new RangeError(`matmul: out has ${out.length} elements, expected ${rows} x ${outDim}`);
  for (const [name, input] of [['x', x], ['w', w.data], ['bias', args.bias]] as const) {
    if (input && overlaps(out, input)) throw new RangeError(`matmul: out overlaps ${name}`);
  }
  const r = runner(opts);
  if (!r.addon) return ref.matmul(x, w, rows, inDim, outDim, args.bias ?? null, out);
  await r.addon.matmul(r.impl, r.threads, x, w.data, w.dtype, args.bias ?? null, out, rows, inDim, outDim);
  return out;
}

export type { ActivationName, AttentionArgs } from './reference.js';

/**
 * An activation in place over f32 values (the inference engine's [tokens x intermediate] MLP):
 * 'gelu' (exact, erf), 'gelu_tanh' (gelu_new / gelu_pytorch_tanh), 'silu'. Native kernels use a
 * polynomial exp and are within ACTIVATION tolerances of docs/kernels.md.
 */
export async function activation(args: { x: Float32Array; fn: ref.ActivationName }, opts?: RunOptions): Promise<Float32Array> {
  if (!['gelu', 'gelu_tanh', 'silu'].includes(args.fn)) throw new TypeError(`unknown activation ${args.fn}`);
  const r = runner(opts);
  if (!r.addon) return ref.activation(args.x, args.fn);
  await r.addon.activation(r.impl, r.threads, args.fn, args.x);
  return args.x;
}

/**
 * Scaled dot-product attention over packed sequences, one job per sequence and head on the kernel
 * threads: the same arguments and result as src/model/ops.ts's attention (f32 softmax natively).
 */
export async function attention(args: ref.AttentionArgs, opts?: RunOptions): Promise<Float32Array> {
  const { heads, kvHeads, headDim } = args;
  if (!(Number.isInteger(heads) && Number.isInteger(kvHeads) && headDim > 0 && kvHeads > 0 && heads % kvHeads === 0)) {
    throw new RangeError(`attention: ${heads} heads do not split into ${kvHeads} key/value heads`);
  }
  if (args.window !== null && !(Number.isInteger(args.window) && args.window >= 1)) throw new RangeError(`attention: window ${args.window} is not a positive integer`);
  const rows = args.q.length / (heads * headDim);
  if (!Number.isInteger(rows) || args.out.length !== args.q.length || args.k.length !== rows * kvHeads * headDim || args.v.length !== args.k.length) {
    throw new RangeError('attention: q, k, v and out do not hold the same rows');
  }
  const seqs = new Uint32Array(2 * args.seqs.length);
  args.seqs.forEach((s, i) => {
    if (!(s.start >= 0 && s.length >= 0 && s.start + s.length <= rows)) throw new RangeError(`attention: sequence ${i} runs past the ${rows} rows`);
    seqs[2 * i] = s.start;
    seqs[2 * i + 1] = s.length;
  });
  for (const [name, input] of [['q', args.q], ['k', args.k], ['v', args.v]] as const) {
    if (overlaps(args.out, input)) throw new RangeError(`attention: out overlaps ${name}`);
  }
  const r = runner(opts);
  if (!r.addon) return ref.attention(args);
  await r.addon.attention(r.impl, r.threads, args.q, args.k, args.v, args.out, seqs, heads, kvHeads, headDim, args.scale,
    args.causal, args.window);
  return args.out;
}

export interface NormArgs {
  /** [rows x dim] */
  x: Float32Array;
  rows: number;
  dim: number;
  weight: Float32Array;
  /** layernorm only; none when omitted. */
  bias?: Float32Array | null;
  eps: number;
  /** [rows x dim]; may be `x` itself; a new array when omitted. */
  out?: Float32Array;
}

/** nn.LayerNorm per row: (x - mean) / sqrt(var + eps) * weight + bias, biased variance, sums in f64. */
export function layernorm(args: NormArgs, opts?: RunOptions): Promise<Float32Array> {
  return runNorm(args, false, opts);
}

/** Llama's RMSNorm per row: x / sqrt(mean(x^2) + eps) * weight, sums in f64. */
export function rmsnorm(args: Omit<NormArgs, 'bias'>, opts?: RunOptions): Promise<Float32Array> {
  return runNorm(args, true, opts);
}

async function runNorm(args: NormArgs, rms: boolean, opts: RunOptions | undefined): Promise<Float32Array> {
  const { x, rows, dim, weight, eps } = args;
  const bias = rms ? null : args.bias ?? null;
  const what = rms ? 'rmsnorm' : 'layernorm';
  if (!(dim > 0) || x.length !== rows * dim) throw new RangeError(`${what}: x has ${x.length} elements, expected ${rows} x ${dim}`);
  if (weight.length !== dim || (bias && bias.length !== dim)) throw new RangeError(`${what}: weight and bias need ${dim} elements`);
  const out = args.out ?? new Float32Array(x.length);
  if (out.length !== x.length) throw new RangeError(`${what}: out has ${out.length} elements, expected ${x.length}`);
  const sameAsX = out.buffer === x.buffer && out.byteOffset === x.byteOffset;
  if (!sameAsX && overlaps(out, x)) throw new RangeError(`${what}: out overlaps x (it may only be x itself)`);
  const r = runner(opts);
  if (!r.addon) return ref.norm(x, rows, dim, weight, bias, eps, rms, out);
  await r.addon.norm(r.impl, r.threads, x, weight, bias, out, rows, dim, eps, rms);
  return out;
}

function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return a.buffer === b.buffer && a.byteLength > 0 && b.byteLength > 0 &&
    a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/**
 * The largest singular value of a rows x cols matrix by power iteration on M^T M, from a fixed
 * pseudo-random start (so the result is reproducible); stops when it changes by less than `tolerance`.
 */
export async function spectralNorm(
  args: { matrix: TensorData; rows: number; cols: number; dtype: string; iterations?: number; tolerance?: number },
  opts?: RunOptions,
): Promise<number> {
  const { cols } = args;
  const norm2 = (x: Float64Array) => Math.sqrt(x.reduce((s, e) => s + e * e, 0));
  let v: Float64Array = new Float64Array(cols);
  for (let c = 0; c < cols; c++) v[c] = Math.sin(c + 1) + 1.5; // positive, not aligned with any axis
  let sigma = 0;
  for (let it = 0; it < (args.iterations ?? 50); it++) {
    const norm = norm2(v);
    if (norm === 0) return 0;
    for (let c = 0; c < cols; c++) v[c]! /= norm;
    const u = await matvec({ ...args, x: v, transpose: false }, opts);
    const next = norm2(u);
    v = await matvec({ ...args, x: u, transpose: true }, opts);
    if (Math.abs(next - sigma) <= (args.tolerance ?? 1e-6) * next) return next;
    sigma = next;
  }
  return sigma;
}
