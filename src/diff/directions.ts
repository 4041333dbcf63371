// Owns the data-free behaviour line of a diff: the top singular directions of the change to the output
// embedding (or input embedding), decoded into tokens. For ΔW (one row per token), the left singular
// vector u of a direction says which tokens' rows moved together along it: with the sign fixed so that
// its largest entry is positive, the tokens with the largest u are the ones the change "moved towards",
// the most negative ones those it moved away from. Power iteration on ΔᵀΔ with deflation, in float64,
// on the rows that changed most (all of them when they fit MAX_ELEMENTS): exact for the usual few-token
// or low-rank edits, an approximation of the leading directions otherwise (docs/probe.md).

import { dtypeBits, type DType } from '../format/dtype.js';
import { toF32 } from '../kernels/index.js';
import type { CheckpointSource, TensorEntry } from './analyze.js';
import { ByteBlocks, f32Rows } from './blocks.js';
import { tokenText, type Vocabulary } from './tokens.js';

/** Elements of ΔW kept for the power iteration (rows with the largest ||Δ row|| first). */
export const MAX_ELEMENTS = 8 * 1024 * 1024;
const ITERATIONS = 30;

export interface Direction {
  /** Singular value of the kept rows' Δ along this direction. */
  sigma: number;
  /** σ² / ||Δ||² (over all rows). */
  share: number;
  towards: { text: string; weight: number }[];
  awayFrom: { text: string; weight: number }[];
}

/** Deterministic start vector (the same diff gives the same line everywhere). */
function start(n: number, seed: number): Float64Array {
  const v = new Float64Array(n);
  let x = 0x9e3779b9 ^ seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    v[i] = ((x >>> 0) / 2 ** 32) - 0.5;
  }
  return v;
}

function normalize(v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] = v[i]! / n;
  return n;
}

export function topDirections(oldW: Float32Array, newW: Float32Array, rows: number, cols: number, vocab: Vocabulary, opts: { k?: number; top?: number } = {}): Direction[] {
  const energy = new Float64Array(rows);
  for (let r = 0; r < rows; r++) energy[r] = rowEnergy(oldW, newW, r * cols, cols);
  const kept = keptRows(energy, cols);
  const delta = new Float64Array(kept.length * cols);
  kept.forEach((r, i) => {
    for (let c = 0; c < cols; c++) delta[i * cols + c] = newW[r * cols + c]! - oldW[r * cols + c]!;
  });
  return powerDirections(energy, kept, delta, cols, vocab, opts);
}

/**
 * topDirections for a token matrix too large to hold whole (docs/diff.md, "Memory"): both versions
 * streamed block by block for the row energies, then only the kept rows read by byte range. The same
 * arithmetic in the same order, so the same directions.
 */
export async function topDirectionsOf(
  oldSide: CheckpointSource, o: TensorEntry, newSide: CheckpointSource, n: TensorEntry, vocab: Vocabulary, opts: { k?: number; top?: number } = {},
): Promise<Direction[]> {
  const [rows, cols] = n.shape as [number, number];
  const rowBytes = (t: TensorEntry) => (cols * dtypeBits(t.dtype as DType)) / 8;
  const pieces = (side: CheckpointSource, t: TensorEntry) => new ByteBlocks((side.stream ? side.stream(t) : (async function* () {
    yield await side.read(t);
  })())[Symbol.asyncIterator](), t.name);
  const a = f32Rows(pieces(oldSide, o), rowBytes(o), o.dtype), b = f32Rows(pieces(newSide, n), rowBytes(n), n.dtype);
  const energy = new Float64Array(rows);
  const step = Math.max(1, Math.floor(BLOCK_ELEMENTS / Math.max(1, cols)));
  for (let r = 0; r < rows; r += step) {
    const count = Math.min(step, rows - r);
    const x = asF32(await a.next(count)), y = asF32(await b.next(count));
    for (let i = 0; i < count; i++) energy[r + i] = rowEnergy(x, y, i * cols, cols);
  }
  await a.end();
  await b.end();
  const kept = keptRows(energy, cols);
  const delta = new Float64Array(kept.length * cols);
  const row = async (side: CheckpointSource, t: TensorEntry, r: number) => {
    const bytes = side.readRange ? await side.readRange(t, r * rowBytes(t), (r + 1) * rowBytes(t)) : (await side.read(t)).subarray(r * rowBytes(t), (r + 1) * rowBytes(t));
    return toF32(bytes, t.dtype);
  };
  // Rows in file order (ranges are read forward); each lands at its place in `kept`'s order.
  const at = new Map(kept.map((r, i) => [r, i]));
  for (const r of [...kept].sort((x, y) => x - y)) {
    const x = await row(oldSide, o, r), y = await row(newSide, n, r);
    const i = at.get(r)!;
    for (let c = 0; c < cols; c++) delta[i * cols + c] = y[c]! - x[c]!;
  }
  return powerDirections(energy, kept, delta, cols, vocab, opts);
}

/** Elements per block of the streamed energy pass. */
const BLOCK_ELEMENTS = 1 << 20;

function asF32(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** ||Δ row||² over `cols` values from `at` (f64 sums of f32 differences). */
function rowEnergy(oldW: Float32Array, newW: Float32Array, at: number, cols: number): number {
  let s = 0;
  for (let c = 0; c < cols; c++) {
    const d = newW[at + c]! - oldW[at + c]!;
    s += d * d;
  }
  return s;
}

/** The changed rows, largest ||Δ row|| first, as many as MAX_ELEMENTS holds. */
function keptRows(energy: Float64Array, cols: number): number[] {
  return [...energy.keys()].filter((r) => energy[r]! > 0).sort((a, b) => energy[b]! - energy[a]! || a - b).slice(0, Math.max(1, Math.floor(MAX_ELEMENTS / cols)));
}

/** Power iteration with deflation on the kept rows' Δ (row-major, `kept`'s order). */
function powerDirections(energy: Float64Array, kept: number[], delta: Float64Array, cols: number, vocab: Vocabulary, opts: { k?: number; top?: number }): Direction[] {
  const k = opts.k ?? 2, top = opts.top ?? 5;
  let total = 0;
  for (let r = 0; r < energy.length; r++) total += energy[r]!;
  if (total === 0) return [];
  const m = kept.length;
  const found: Float64Array[] = [];
  const out: Direction[] = [];
  for (let d = 0; d < Math.min(k, m, cols); d++) {
    const v = start(cols, d + 1);
    const u = new Float64Array(m);
    let sigma = 0;
    for (let it = 0; it < ITERATIONS; it++) {
      for (const f of found) {
        let dot = 0;
        for (let c = 0; c < cols; c++) dot += f[c]! * v[c]!;
        for (let c = 0; c < cols; c++) v[c] = v[c]! - dot * f[c]!;
      }
      normalize(v);
      for (let i = 0; i < m; i++) {
        let s = 0;
        for (let c = 0; c < cols; c++) s += delta[i * cols + c]! * v[c]!;
        u[i] = s;
      }
      sigma = normalize(u);
      v.fill(0);
      for (let i = 0; i < m; i++) for (let c = 0; c < cols; c++) v[c] = v[c]! + delta[i * cols + c]! * u[i]!;
    }
    for (const f of found) {
      let dot = 0;
      for (let c = 0; c < cols; c++) dot += f[c]! * v[c]!;
      for (let c = 0; c < cols; c++) v[c] = v[c]! - dot * f[c]!;
    }
    normalize(v);
    found.push(v);
    if (sigma * sigma <= 1e-9 * total) break;
    let big = 0;
    for (let i = 0; i < m; i++) if (Math.abs(u[i]!) > Math.abs(u[big]!)) big = i;
    const sign = u[big]! < 0 ? -1 : 1;
    const order = [...u.keys()].sort((a, b) => sign * (u[b]! - u[a]!) || a - b);
    const name = (i: number) => {
      const id = kept[i]!;
      const t = id < vocab.size ? vocab.tokens[id]! : '';
      return t ? tokenText(t, vocab.style) : `<row ${id}>`;
    };
    out.push({
      sigma, share: (sigma * sigma) / total,
      towards: order.slice(0, top).filter((i) => sign * u[i]! > 0).map((i) => ({ text: name(i), weight: sign * u[i]! })),
      awayFrom: order.slice(-top).reverse().filter((i) => sign * u[i]! < 0).map((i) => ({ text: name(i), weight: sign * u[i]! })),
    });
  }
  return out;
}

export function renderDirections(tensor: string, dirs: Direction[]): string[] {
  return dirs.map((d, i) => {
    const list = (l: { text: string }[]) => l.map((t) => JSON.stringify(t.text)).join(', ');
    return `${tensor} direction ${i + 1} (${(d.share * 100).toFixed(0)}% of the change): moved towards ${list(d.towards) || '-'}` + (d.awayFrom.length ? `; away from ${list(d.awayFrom)}` : '');
  });
}
