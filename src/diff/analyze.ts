// Owns the analysis of one checkpoint change: pairs the tensors of two versions by name, streams them
// one pair at a time through the kernels (statistics, change mask, matvec for the rank sketch), decides
// each tensor's change kind and gathers module totals, token moves and the Δ histogram. It never does
// I/O itself: each side is a CheckpointSource whose read() (and stream()) the caller implements (store, file).
// Memory (docs/diff.md, "Memory"): a tensor up to WHOLE_TENSOR_BYTES is held whole, once per side; a
// larger one is streamed block by block, once per pass (two at most), so what is held is a block of
// rows of each side, its f32 copies, the change masks of a sparse change (1 bit per element) and the
// rank sketch's sampled rows.

import { isDType as isFormatDType, dtypeBits } from '../format/dtype.js';
import { changeMask, combineDiffStats, diffStats, isDType as isKernelDType, isFloatDType, toF32, type DiffStats } from '../kernels/index.js';
import { byteRows, ByteBlocks, f32Rows, type RowReader } from './blocks.js';
import { classifyChange } from './kinds.js';
import { planRowSample, rankOfSample, type RowSample, SAMPLE_ROWS } from './rank.js';
import {
  accumulateHistogram, accumulateRowNorms, deriveStats, elementCount, emptyHistogram, type FloatValues, type MaskProfile, maskProfile,
  matrixShape, moduleOf, nonzeroIndices, sparseStructure, trimHistogram,
} from './stats.js';
import { isTokenMatrix, topTokenMoves, type Vocabulary } from './tokens.js';
import type { CheckpointDiff, DeltaHistogram, ModuleTotal, RankEstimate, SparseStructure, TensorDiff, TokenView } from './types.js';

export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Content id when known (pointer sides): equal ids are unchanged without reading. */
  id?: string;
}

export interface CheckpointSource {
  size: number;
  /** Short id of the version for display. */
  id?: string;
  metadata: [string, string][] | null;
  tensors: TensorEntry[];
  /** The tensor's bytes (little-endian, as in the file). */
  read(t: TensorEntry): Uint8Array | Promise<Uint8Array>;
  /**
   * The same bytes as consecutive pieces of any size. When a source has it, a tensor larger than
   * WHOLE_TENSOR_BYTES is compared from it block by block instead of being read whole.
   */
  stream?(t: TensorEntry): AsyncIterable<Uint8Array>;
  /** Bytes [begin, end) of the tensor, for the rank sketch's few rows of a streamed tensor. */
  readRange?(t: TensorEntry, begin: number, end: number): Uint8Array | Promise<Uint8Array>;
}

export interface AnalyzeOptions {
  vocabulary?: Vocabulary | null;
  /** Tokens listed per token matrix (default 10). */
  topTokens?: number;
  /** Build the Δ histogram (one more pass over changed tensors; the HTML report needs it). */
  histogram?: boolean;
  /** Tensors up to this many bytes per side are read whole (default WHOLE_TENSOR_BYTES); larger ones are streamed. */
  wholeTensorBytes?: number;
}

/** Change masks (for row/column structure) are computed when at most this share of elements changed. */
export const STRUCTURE_MAX_DENSITY = 0.5;
/** Rows per block for the kernel statistics pass; block energies steer the rank sample. */
const STAT_BLOCKS = 64;
/** Elements per block when a pass converts rows to f32 (bounds the extra memory). */
const PASS_BLOCK_ELEMENTS = 1 << 20;
/** A tensor up to this size (per side) is read whole, once; a larger one is streamed, once per pass. */
export const WHOLE_TENSOR_BYTES = 32 << 20;
/** The most bytes of rows (per side) handed to the statistics kernels at once. */
const MAX_BLOCK_BYTES = 8 << 20;

export async function analyzeCheckpoint(path: string, oldSide: CheckpointSource | null, newSide: CheckpointSource | null, opts: AnalyzeOptions = {}): Promise<CheckpointDiff> {
  const tensors: TensorDiff[] = [];
  const tokens: TokenView[] = [];
  const histogram = opts.histogram ? emptyHistogram() : undefined;
  const oldByName = new Map((oldSide?.tensors ?? []).map((t) => [t.name, t]));
  const newNames = new Set((newSide?.tensors ?? []).map((t) => t.name));

  for (const n of newSide?.tensors ?? []) {
    const o = oldByName.get(n.name);
    if (!o) {
      tensors.push(structural(n.name, 'added', n, undefined));
      continue;
    }
    const ctx: PairContext = { vocabulary: opts.vocabulary ?? null, topTokens: opts.topTokens ?? 10, histogram, tokens, path, wholeTensorBytes: opts.wholeTensorBytes ?? WHOLE_TENSOR_BYTES };
    tensors.push(await comparePair(o, n, oldSide!, newSide!, ctx));
  }
  for (const o of oldSide?.tensors ?? []) if (!newNames.has(o.name)) tensors.push(structural(o.name, 'removed', undefined, o));

  let sumD2 = 0, sumO2 = 0;
  for (const t of tensors) {
    if (!compared(t)) continue;
    sumD2 += t.normDelta ** 2;
    sumO2 += t.normOld ** 2;
  }
  return {
    path,
    status: !oldSide ? 'added' : !newSide ? 'deleted' : 'modified',
    kind: 'safetensors',
    old: oldSide ? { size: oldSide.size, tensors: oldSide.tensors.length, id: oldSide.id } : null,
    new: newSide ? { size: newSide.size, tensors: newSide.tensors.length, id: newSide.id } : null,
    tensors: sortForReport(tensors),
    modules: moduleTotals(tensors),
    tokens,
    totals: { normDelta: Math.sqrt(sumD2), normOld: Math.sqrt(sumO2), relChange: sumO2 > 0 ? Math.sqrt(sumD2 / sumO2) : sumD2 === 0 ? 0 : null },
    histogram: histogram ? trimHistogram(histogram) : undefined,
    metadata: metadataChanges(oldSide?.metadata ?? null, newSide?.metadata ?? null),
    notes: [],
  };
}

/** Tensors whose values were compared element by element (they carry norms). */
export function compared(t: TensorDiff): boolean {
  return t.elements > 0 && t.numeric && (t.status === 'changed' || t.status === 'retyped');
}

interface PairContext {
  vocabulary: Vocabulary | null;
  topTokens: number;
  histogram: DeltaHistogram | undefined;
  tokens: TokenView[];
  path: string;
  wholeTensorBytes: number;
}

async function comparePair(o: TensorEntry, n: TensorEntry, oldSide: CheckpointSource, newSide: CheckpointSource, ctx: PairContext): Promise<TensorDiff> {
  const sameShape = o.shape.length === n.shape.length && o.shape.every((d, k) => d === n.shape[k]);
  if (sameShape && o.dtype === n.dtype) {
    if (o.id !== undefined && o.id === n.id) return unchanged(n);
    const sides: Sides = { a: await opener(oldSide, o, ctx.wholeTensorBytes), b: await opener(newSide, n, ctx.wholeTensorBytes) };
    return compareValues(n.name, n.dtype, n.shape, sides, 'changed', ctx);
  }
  if (sameShape && isFloatDType(o.dtype) && isFloatDType(n.dtype)) {
    // A dtype conversion (e.g. F32 -> BF16): compare the values in f32, converted block by block.
    const sides: Sides = { a: await opener(oldSide, o, ctx.wholeTensorBytes), b: await opener(newSide, n, ctx.wholeTensorBytes), from: { a: o.dtype, b: n.dtype } };
    const d = await compareValues(n.name, 'F32', n.shape, sides, 'retyped', ctx);
    return { ...d, dtype: n.dtype, oldDtype: o.dtype, oldShape: o.shape, detail: `${o.dtype} -> ${n.dtype}, ${d.kind} ${d.detail}` };
  }
  return structural(n.name, sameShape ? 'retyped' : 'reshaped', n, o);
}

/** Both versions of a tensor, each opened from its start once per pass; `from`: their dtypes when converted to f32. */
interface Sides {
  a: TensorBytes;
  b: TensorBytes;
  from?: { a: string; b: string };
}

/** One version of a tensor: opened from its start once per pass, and (when the source can) a byte range of it. */
interface TensorBytes {
  open(): ByteBlocks;
  range?: (begin: number, end: number) => Promise<Uint8Array>;
}

/** Bits per element of a dtype the format knows (undefined otherwise). */
function dtypeBitsOf(dtype: string): number | undefined {
  return isFormatDType(dtype) ? dtypeBits(dtype) : undefined;
}

/**
 * Opens one version of a tensor from its start, as many times as the comparison makes passes: a tensor
 * up to WHOLE_TENSOR_BYTES (or one its source cannot stream) is read once and handed out as views; a
 * larger one is streamed again for each pass, so only a block of it is ever in memory.
 */
async function opener(side: CheckpointSource, t: TensorEntry, wholeMax: number): Promise<TensorBytes> {
  const bits = dtypeBitsOf(t.dtype);
  const bytes = bits === undefined ? Infinity : Math.ceil((elementCount(t.shape) * bits) / 8);
  if (side.stream && bits !== undefined && bytes > wholeMax) {
    return {
      open: () => new ByteBlocks(side.stream!(t)[Symbol.asyncIterator](), t.name),
      range: side.readRange ? async (begin, end) => toBytes(await side.readRange!(t, begin, end)) : undefined,
    };
  }
  const whole = toBytes(await side.read(t));
  return { open: () => ByteBlocks.of(whole, t.name), range: async (begin, end) => whole.subarray(begin, end) };
}

/** Rows of one side for a pass: raw bytes of `dtype`, or f32 when the sides are converted. */
function rowsOf(sides: Sides, side: 'a' | 'b', cols: number, dtype: string): RowReader {
  const from = sides.from?.[side];
  return from ? f32Rows(sides[side].open(), (cols * dtypeBitsOf(from)!) / 8, from) : byteRows(sides[side].open(), (cols * dtypeBitsOf(dtype)!) / 8);
}

function structural(name: string, status: TensorDiff['status'], n: TensorEntry | undefined, o: TensorEntry | undefined): TensorDiff {
  const t = (n ?? o)!;
  const shapeText = (s: number[]) => `[${s.join(',')}]`;
  const detail = status === 'added' ? `${t.dtype} ${shapeText(t.shape)}`
    : status === 'removed' ? `${t.dtype} ${shapeText(t.shape)}`
      : `${o!.dtype} ${shapeText(o!.shape)} -> ${n!.dtype} ${shapeText(n!.shape)}`;
  return {
    ...blank(name, status, t.dtype, t.shape),
    ...(n && o ? { oldDtype: o.dtype, oldShape: o.shape } : {}),
    kind: 'structural',
    detail,
  };
}

function unchanged(t: TensorEntry): TensorDiff {
  return { ...blank(t.name, 'unchanged', t.dtype, t.shape), elements: elementCount(t.shape), kind: 'unchanged', detail: 'same content id' };
}

function blank(name: string, status: TensorDiff['status'], dtype: string, shape: number[]): TensorDiff {
  return {
    name, status, dtype, shape, elements: 0, changedElements: 0, changedFraction: 0, normOld: 0, normNew: 0, normDelta: 0,
    relChange: null, cosine: null, maxAbsDelta: 0, signFlips: 0, nonFinite: { old: 0, new: 0 }, kind: 'structural', detail: '', numeric: true,
  };
}

/**
 * Element-wise comparison of two versions with the same dtype and shape, in passes over blocks of rows:
 * the first gathers the kernel statistics (and the change mask while few elements changed), the second,
 * when wanted, the rank sketch's rows, the token rows and the Δ histogram.
 */
async function compareValues(name: string, dtype: string, shape: number[], sides: Sides, status: 'changed' | 'retyped', ctx: PairContext): Promise<TensorDiff> {
  const elements = elementCount(shape);
  if (!isKernelDType(dtype)) return compareBits(name, dtype, shape, sides, status);
  const { rows, cols } = matrixShape(shape);
  const isMatrix = shape.length >= 2 && rows >= 2 && cols >= 2;

  // Pass 1: the kernel statistics per block of rows, so the rank sketch knows where the energy is. A
  // block too large for MAX_BLOCK_BYTES goes to the kernels in parts, whose statistics are added up.
  const blocks = rows > SAMPLE_ROWS ? Math.min(rows, STAT_BLOCKS) : 1;
  const blockRows = Math.ceil(rows / blocks);
  const partRows = Math.max(1, Math.floor(MAX_BLOCK_BYTES / Math.max(1, (cols * dtypeBitsOf(dtype)!) / 8)));
  // Change masks are kept (1 bit per element) only while the changes so far could still be a structure.
  let masks: { first: number; count: number; mask: Uint8Array }[] | null = isMatrix ? [] : null;
  let changedSoFar = 0;
  const blockStats: DiffStats[] = [];
  const a = rowsOf(sides, 'a', cols, dtype), b = rowsOf(sides, 'b', cols, dtype);
  for (let r = 0; r < rows; r += blockRows) {
    const count = Math.min(blockRows, rows - r);
    const parts: DiffStats[] = [];
    for (let p = r; p < r + count; p += partRows) {
      const n = Math.min(partRows, r + count - p);
      const ab = await a.next(n), bb = await b.next(n);
      const part = await diffStats(ab, bb, dtype);
      parts.push(part);
      changedSoFar += part.changed;
      if (masks && changedSoFar > STRUCTURE_MAX_DENSITY * elements) masks = null;
      if (masks && part.changed > 0) masks.push({ first: p, count: n, mask: (await changeMask(ab, bb, dtype)).mask });
    }
    blockStats.push(parts.length === 1 ? parts[0]! : combineDiffStats(parts));
  }
  await a.end();
  await b.end();
  const stats = combineDiffStats(blockStats);
  const derived = deriveStats(stats, elements);
  const base: TensorDiff = {
    ...blank(name, status, dtype, shape),
    elements,
    changedElements: stats.changed,
    changedFraction: derived.changedFraction,
    normOld: derived.normOld,
    normNew: derived.normNew,
    normDelta: derived.normDelta,
    relChange: derived.relChange,
    cosine: derived.cosine,
    maxAbsDelta: derived.maxAbsDelta,
    signFlips: stats.signFlips,
    nonFinite: { old: stats.nanA + stats.infA, new: stats.nanB + stats.infB },
  };
  if (stats.changed === 0) return { ...base, status: status === 'changed' ? 'unchanged' : status, kind: 'unchanged', detail: 'bits equal' };

  let structure: SparseStructure | undefined;
  let changedRows: number[] | undefined;
  if (masks && derived.changedFraction <= STRUCTURE_MAX_DENSITY) {
    const profile: MaskProfile = { rowCounts: new Uint32Array(rows), colCounts: new Uint32Array(cols) };
    for (const m of masks) maskProfile(m.mask, m.count, cols, profile, m.first);
    structure = sparseStructure(profile, stats.changed);
    changedRows = nonzeroIndices(profile.rowCounts);
  }
  masks = null;

  const float = isFloatDType(dtype);
  const plan = isMatrix && float && stats.sumD2 > 0
    ? planRowSample({ rows, changedRows, blockEnergy: Float64Array.from(blockStats, (s) => s.sumD2), blockRows, seed: name })
    : null;
  const wantsTokens = float && ctx.vocabulary !== null && isTokenMatrix(name, shape, ctx.vocabulary.size);

  // Pass 2: the sampled rows of Δ (kept as f64 differences until the sketch is built in the sample's
  // order), the token rows' norms and the histogram. The sample alone reads just its rows, where it can.
  let rank: RankEstimate | undefined;
  const sampled = new Map<number, Float64Array | null>((plan?.rows ?? []).map((r) => [r, null]));
  if (plan && !wantsTokens && !ctx.histogram && sides.a.range && sides.b.range) {
    for (const r of [...sampled.keys()].sort((x, y) => x - y)) {
      sampled.set(r, rowDelta(await rowValues(sides, 'a', r, cols, dtype), await rowValues(sides, 'b', r, cols, dtype), 0, cols));
    }
    rank = await rankSketch(name, plan, sampled, cols, stats.sumD2);
  } else if (plan || (float && (wantsTokens || ctx.histogram))) {
    const rowsD = wantsTokens ? new Float64Array(rows) : null, rowsO = wantsTokens ? new Float64Array(rows) : null;
    await valuePass(sides, dtype, rows, cols, (oldV, newV, first, count) => {
      if (sampled.size) {
        for (let r = first; r < first + count; r++) if (sampled.has(r)) sampled.set(r, rowDelta(oldV, newV, (r - first) * cols, cols));
      }
      if (rowsD && rowsO) accumulateRowNorms(oldV, newV, count, cols, first, rowsD, rowsO);
      if (ctx.histogram) accumulateHistogram(ctx.histogram, oldV, newV);
    });
    if (plan) rank = await rankSketch(name, plan, sampled, cols, stats.sumD2);
    if (rowsD && rowsO) {
      const top = topTokenMoves(rowsD, rowsO, ctx.vocabulary!, ctx.topTokens);
      ctx.tokens.push({
        tensor: name, tokenizer: ctx.vocabulary!.source, rows, vocabSize: ctx.vocabulary!.size,
        rowsChanged: rowsD.reduce((k, v) => k + (v > 0 ? 1 : 0), 0), top,
      });
    }
  }

  const decision = classifyChange({ elements, stats, rescale: derived.rescale, structure, rank, rows, cols });
  return { ...base, kind: decision.kind, detail: decision.detail, rank, structure, rescale: derived.rescale ?? undefined };
}

/**
 * Dtypes the kernels cannot read as numbers (F8, F4, F6, C64): count changed elements by their bits,
 * block by block of whole rows (the whole tensor at once when a row is not a whole number of bytes).
 */
async function compareBits(name: string, dtype: string, shape: number[], sides: Sides, status: 'changed' | 'retyped'): Promise<TensorDiff> {
  const elements = elementCount(shape);
  const bits = dtypeBitsOf(dtype);
  const { rows, cols } = matrixShape(shape);
  const rowBytes = bits !== undefined && (cols * bits) % 8 === 0 ? (cols * bits) / 8 : 0;
  const a = sides.a.open(), b = sides.b.open();
  // Blocks of whole rows; without a known whole-byte row, everything the sources hold, as one block.
  const blocks: [number, number][] = [];
  if (rowBytes > 0) {
    const step = Math.max(1, Math.floor(MAX_BLOCK_BYTES / rowBytes));
    for (let r = 0; r < rows; r += step) blocks.push([r, Math.min(step, rows - r) * rowBytes]);
  }
  const width = bits !== undefined && bits % 8 === 0 ? bits / 8 : elements > 0 ? NaN : 1;
  let changed = 0, total = 0;
  const count = (x: Uint8Array, y: Uint8Array) => {
    const w = Number.isInteger(width) && width >= 1 ? width : 0;
    if (w) {
      const n = x.byteLength / w;
      for (let j = 0; j < n; j++) {
        for (let k = j * w; k < (j + 1) * w; k++) {
          if (x[k] !== y[k]) {
            changed++;
            break;
          }
        }
      }
    } else {
      for (let k = 0; k < x.byteLength; k++) if (x[k] !== y[k]) changed++;
    }
    total += x.byteLength;
  };
  if (blocks.length) {
    for (const [, bytes] of blocks) count(await a.take(bytes), await b.take(bytes));
  } else {
    count(await a.rest(), await b.rest());
  }
  await a.end();
  await b.end();
  const perElement = Number.isInteger(width) && width >= 1;
  const units = perElement ? elements : total;
  const fraction = units > 0 ? changed / units : 0;
  const kind = changed === 0 ? 'unchanged' : fraction <= 0.1 ? 'sparse' : 'dense';
  return {
    ...blank(name, changed === 0 && status === 'changed' ? 'unchanged' : status, dtype, shape),
    elements: units, changedElements: changed, changedFraction: fraction, numeric: false, kind,
    detail: `${dtype} compared bit by bit${perElement ? '' : ' (per byte)'}`,
  };
}

/** The f32/f64 values of row `r` of one side (read by range). */
async function rowValues(sides: Sides, side: 'a' | 'b', r: number, cols: number, dtype: string): Promise<FloatValues> {
  const from = sides.from?.[side];
  const rowBytes = (cols * dtypeBitsOf(from ?? dtype)!) / 8;
  const bytes = await sides[side].range!(r * rowBytes, (r + 1) * rowBytes);
  return from ? toF32(bytes, from) : floatValues(bytes, dtype);
}

/** Δ = new - old of one row (f64 of the f32/f64 values, as the statistics see them). */
function rowDelta(oldV: FloatValues, newV: FloatValues, at: number, cols: number): Float64Array {
  const d = new Float64Array(cols);
  for (let c = 0; c < cols; c++) d[c] = newV[at + c]! - oldV[at + c]!;
  return d;
}

async function rankSketch(name: string, plan: RowSample, deltas: Map<number, Float64Array | null>, cols: number, totalEnergy: number): Promise<RankEstimate> {
  const k = plan.rows.length;
  const sample = new Float64Array(k * cols);
  const colEnergy = new Float64Array(cols);
  for (let i = 0; i < k; i++) fillSampleRow(sample, i * cols, deltas.get(plan.rows[i]!)!, plan.weights[i]!, colEnergy);
  return rankOfSample(sample, k, cols, { exactRows: plan.exact, seed: name, totalEnergy, colEnergy });
}

/** One weighted row of the sketch from Δ's row; non-finite elements are left out, as the statistics leave them out. */
function fillSampleRow(out: Float64Array, at: number, delta: Float64Array, w: number, colEnergy: Float64Array): void {
  const n = colEnergy.length;
  for (let c = 0; c < n; c++) {
    const d = delta[c]!;
    const v = d - d === 0 ? d * w : 0;
    out[at + c] = v;
    colEnergy[c] = colEnergy[c]! + v * v;
  }
}

/** Calls `visit` with f32/f64 values of consecutive blocks of rows of both versions (one more pass over the sources). */
async function valuePass(
  sides: Sides, dtype: string, rows: number, cols: number,
  visit: (oldV: FloatValues, newV: FloatValues, firstRow: number, count: number) => void,
): Promise<void> {
  const a = rowsOf(sides, 'a', cols, dtype), b = rowsOf(sides, 'b', cols, dtype);
  const step = Math.max(1, Math.floor(PASS_BLOCK_ELEMENTS / Math.max(1, cols)));
  for (let r = 0; r < rows; r += step) {
    const count = Math.min(step, rows - r);
    const oldV = await floatValues(await a.next(count), dtype);
    const newV = await floatValues(await b.next(count), dtype);
    visit(oldV, newV, r, count);
  }
  await a.end();
  await b.end();
}

/** The values of float tensor bytes: views for F32/F64 (copied when misaligned), f32 for F16/BF16. */
async function floatValues(bytes: Uint8Array, dtype: string): Promise<FloatValues> {
  if (dtype === 'F32' || dtype === 'F64') {
    const size = dtype === 'F32' ? 4 : 8;
    const src = bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes); // a real copy: slice() on a Buffer is a view
    return dtype === 'F32'
      ? new Float32Array(src.buffer, src.byteOffset, src.byteLength / 4)
      : new Float64Array(src.buffer, src.byteOffset, src.byteLength / 8);
  }
  return toF32(bytes, dtype);
}

function toBytes(v: Uint8Array | Float32Array): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** Structural changes first, then changed tensors by relative change (largest first), unchanged last. */
export function sortForReport(list: TensorDiff[]): TensorDiff[] {
  const rank = (t: TensorDiff) => (t.status === 'unchanged' ? 2 : compared(t) || t.status === 'changed' ? 1 : 0);
  const rel = (t: TensorDiff) => (t.relChange === null ? Infinity : t.relChange);
  return [...list].sort((x, y) => rank(x) - rank(y) || (rank(x) === 1 ? rel(y) - rel(x) || y.changedFraction - x.changedFraction : 0) || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

export function moduleTotals(list: TensorDiff[]): ModuleTotal[] {
  const byName = new Map<string, { tensors: number; changed: number; d2: number; o2: number; max: number | null; anyNull: boolean }>();
  for (const t of list) {
    const key = moduleOf(t.name);
    const m = byName.get(key) ?? { tensors: 0, changed: 0, d2: 0, o2: 0, max: null, anyNull: false };
    m.tensors++;
    if (t.status !== 'unchanged') m.changed++;
    if (compared(t)) {
      m.d2 += t.normDelta ** 2;
      m.o2 += t.normOld ** 2;
      if (t.relChange === null) m.anyNull = true;
      else m.max = Math.max(m.max ?? 0, t.relChange);
    }
    byName.set(key, m);
  }
  const out: ModuleTotal[] = [...byName].map(([name, m]) => ({
    name, tensors: m.tensors, changed: m.changed, normDelta: Math.sqrt(m.d2), normOld: Math.sqrt(m.o2),
    relChange: m.o2 > 0 ? Math.sqrt(m.d2 / m.o2) : m.d2 === 0 ? (m.changed ? null : 0) : null,
    maxRelChange: m.anyNull ? null : m.max,
  }));
  const key = (m: ModuleTotal) => (m.changed === 0 ? -1 : m.relChange ?? Infinity);
  return out.sort((x, y) => key(y) - key(x) || (x.name < y.name ? -1 : 1));
}

function metadataChanges(o: [string, string][] | null, n: [string, string][] | null): [string, string | null, string | null][] {
  const om = new Map(o ?? []), nm = new Map(n ?? []);
  const out: [string, string | null, string | null][] = [];
  for (const [k, v] of nm) if (om.get(k) !== v) out.push([k, om.get(k) ?? null, v]);
  for (const [k, v] of om) if (!nm.has(k)) out.push([k, v, null]);
  return out;
}
