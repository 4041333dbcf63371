// Owns the analysis of one checkpoint change: pairs the tensors of two versions by name, streams them
// one pair at a time through the kernels (statistics, change mask, matvec for the rank sketch), decides
// each tensor's change kind and gathers module totals, token moves and the Δ histogram. It never does
// I/O itself: each side is a CheckpointSource whose read() the caller implements (store, file).
// Memory: at most the two versions of one tensor, plus f32 copies of one block of rows.

import { changeMask, combineDiffStats, diffStats, isDType as isKernelDType, isFloatDType, toF32, type DiffStats } from '../kernels/index.js';
import { classifyChange } from './kinds.js';
import { planRowSample, rankOfSample, SAMPLE_ROWS } from './rank.js';
import {
  accumulateHistogram, accumulateRowNorms, deriveStats, elementCount, emptyHistogram, type FloatValues, maskProfile, matrixShape,
  moduleOf, nonzeroIndices, sparseStructure, trimHistogram,
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
}

export interface AnalyzeOptions {
  vocabulary?: Vocabulary | null;
  /** Tokens listed per token matrix (default 10). */
  topTokens?: number;
  /** Build the Δ histogram (one more pass over changed tensors; the HTML report needs it). */
  histogram?: boolean;
}

/** Change masks (for row/column structure) are computed when at most this share of elements changed. */
export const STRUCTURE_MAX_DENSITY = 0.5;
/** Rows per block for the kernel statistics pass; block energies steer the rank sample. */
const STAT_BLOCKS = 64;
/** Elements per block when a pass converts rows to f32 (bounds the extra memory). */
const PASS_BLOCK_ELEMENTS = 1 << 20;

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
    const ctx: PairContext = { vocabulary: opts.vocabulary ?? null, topTokens: opts.topTokens ?? 10, histogram, tokens, path };
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
}

async function comparePair(o: TensorEntry, n: TensorEntry, oldSide: CheckpointSource, newSide: CheckpointSource, ctx: PairContext): Promise<TensorDiff> {
  const sameShape = o.shape.length === n.shape.length && o.shape.every((d, k) => d === n.shape[k]);
  if (sameShape && o.dtype === n.dtype) {
    if (o.id !== undefined && o.id === n.id) return unchanged(n);
    const a = await oldSide.read(o);
    const b = await newSide.read(n);
    return compareValues(n.name, n.dtype, n.shape, a, b, 'changed', ctx);
  }
  if (sameShape && isFloatDType(o.dtype) && isFloatDType(n.dtype)) {
    // A dtype conversion (e.g. F32 -> BF16): compare the values in f32.
    const a = await toF32(await oldSide.read(o), o.dtype);
    const b = await toF32(await newSide.read(n), n.dtype);
    const d = await compareValues(n.name, 'F32', n.shape, a, b, 'retyped', ctx);
    return { ...d, dtype: n.dtype, oldDtype: o.dtype, oldShape: o.shape, detail: `${o.dtype} -> ${n.dtype}, ${d.kind} ${d.detail}` };
  }
  return structural(n.name, sameShape ? 'retyped' : 'reshaped', n, o);
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

/** Element-wise comparison of two versions with the same dtype and shape. */
async function compareValues(
  name: string, dtype: string, shape: number[], a: Uint8Array | Float32Array, b: Uint8Array | Float32Array, status: 'changed' | 'retyped', ctx: PairContext,
): Promise<TensorDiff> {
  const elements = elementCount(shape);
  if (!isKernelDType(dtype)) return compareBits(name, dtype, shape, toBytes(a), toBytes(b), status);
  const { rows, cols } = matrixShape(shape);
  const ab = toBytes(a), bb = toBytes(b);

  // One kernel pass, split into blocks of rows so the rank sketch knows where the energy is.
  const blocks = rows > SAMPLE_ROWS ? Math.min(rows, STAT_BLOCKS) : 1;
  const blockRows = Math.ceil(rows / blocks);
  const rowBytes = ab.byteLength / rows;
  const parts: Promise<DiffStats>[] = [];
  for (let r = 0; r < rows; r += blockRows) {
    const from = r * rowBytes, to = Math.min(rows, r + blockRows) * rowBytes;
    parts.push(diffStats(ab.subarray(from, to), bb.subarray(from, to), dtype));
  }
  const blockStats = await Promise.all(parts);
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

  const isMatrix = shape.length >= 2 && rows >= 2 && cols >= 2;
  let structure: SparseStructure | undefined;
  let changedRows: number[] | undefined;
  if (isMatrix && derived.changedFraction <= STRUCTURE_MAX_DENSITY) {
    const { mask } = await changeMask(ab, bb, dtype);
    const profile = maskProfile(mask, rows, cols);
    structure = sparseStructure(profile, stats.changed);
    changedRows = nonzeroIndices(profile.rowCounts);
  }

  let rank: RankEstimate | undefined;
  const float = isFloatDType(dtype);
  if (isMatrix && float && stats.sumD2 > 0) {
    rank = await rankSketch(name, dtype, ab, bb, rows, cols, {
      changedRows, blockEnergy: Float64Array.from(blockStats, (s) => s.sumD2), blockRows, totalEnergy: stats.sumD2,
    });
  }

  const wantsTokens = float && ctx.vocabulary !== null && isTokenMatrix(name, shape, ctx.vocabulary.size);
  if (float && (wantsTokens || ctx.histogram)) {
    const rowsD = new Float64Array(rows), rowsO = new Float64Array(rows);
    await valuePass(dtype, ab, bb, rows, cols, (oldV, newV, first, count) => {
      if (wantsTokens) accumulateRowNorms(oldV, newV, count, cols, first, rowsD, rowsO);
      if (ctx.histogram) accumulateHistogram(ctx.histogram, oldV, newV);
    });
    if (wantsTokens) {
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

/** Dtypes the kernels cannot read as numbers (F8, F4, F6, C64): count changed elements by their bits. */
function compareBits(name: string, dtype: string, shape: number[], a: Uint8Array, b: Uint8Array, status: 'changed' | 'retyped'): TensorDiff {
  const elements = elementCount(shape);
  const width = elements > 0 ? a.byteLength / elements : 1;
  let changed = 0;
  if (Number.isInteger(width) && width >= 1) {
    for (let j = 0; j < elements; j++) {
      for (let k = j * width; k < (j + 1) * width; k++) {
        if (a[k] !== b[k]) {
          changed++;
          break;
        }
      }
    }
  } else {
    for (let k = 0; k < a.byteLength; k++) if (a[k] !== b[k]) changed++;
  }
  const units = Number.isInteger(width) && width >= 1 ? elements : a.byteLength;
  const fraction = units > 0 ? changed / units : 0;
  const kind = changed === 0 ? 'unchanged' : fraction <= 0.1 ? 'sparse' : 'dense';
  return {
    ...blank(name, changed === 0 && status === 'changed' ? 'unchanged' : status, dtype, shape),
    elements: units, changedElements: changed, changedFraction: fraction, numeric: false, kind,
    detail: `${dtype} compared bit by bit${units === elements ? '' : ' (per byte)'}`,
  };
}

interface SketchInputs {
  changedRows: number[] | undefined;
  blockEnergy: Float64Array;
  blockRows: number;
  totalEnergy: number;
}

async function rankSketch(name: string, dtype: string, a: Uint8Array, b: Uint8Array, rows: number, cols: number, s: SketchInputs): Promise<RankEstimate> {
  const plan = planRowSample({ rows, changedRows: s.changedRows, blockEnergy: s.blockEnergy, blockRows: s.blockRows, seed: name });
  const k = plan.rows.length;
  const sample = new Float64Array(k * cols);
  const colEnergy = new Float64Array(cols);
  const rowBytes = a.byteLength / rows;
  for (let i = 0; i < k; i++) {
    const r = plan.rows[i]!, w = plan.weights[i]!;
    const oldV = await floatValues(a.subarray(r * rowBytes, (r + 1) * rowBytes), dtype);
    const newV = await floatValues(b.subarray(r * rowBytes, (r + 1) * rowBytes), dtype);
    fillSampleRow(sample, i * cols, oldV, newV, w, colEnergy);
  }
  return rankOfSample(sample, k, cols, { exactRows: plan.exact, seed: name, totalEnergy: s.totalEnergy, colEnergy });
}

/** One weighted row of the sketch, Δ = new - old; non-finite elements are left out, as the statistics leave them out. */
function fillSampleRow(out: Float64Array, at: number, oldV: FloatValues, newV: FloatValues, w: number, colEnergy: Float64Array): void {
  const n = colEnergy.length;
  for (let c = 0; c < n; c++) {
    const d = newV[c]! - oldV[c]!;
    const v = d - d === 0 ? d * w : 0;
    out[at + c] = v;
    colEnergy[c] = colEnergy[c]! + v * v;
  }
}

/** Calls `visit` with f32/f64 values of consecutive blocks of rows of both versions. */
async function valuePass(
  dtype: string, a: Uint8Array, b: Uint8Array, rows: number, cols: number,
  visit: (oldV: FloatValues, newV: FloatValues, firstRow: number, count: number) => void,
): Promise<void> {
  const rowBytes = a.byteLength / rows;
  const step = Math.max(1, Math.floor(PASS_BLOCK_ELEMENTS / Math.max(1, cols)));
  for (let r = 0; r < rows; r += step) {
    const count = Math.min(step, rows - r);
    const oldV = await floatValues(a.subarray(r * rowBytes, (r + count) * rowBytes), dtype);
    const newV = await floatValues(b.subarray(r * rowBytes, (r + count) * rowBytes), dtype);
    visit(oldV, newV, r, count);
  }
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
