// Owns the element-level merge of one tensor changed on both sides (DESIGN.md "Merge semantics"):
// classify every element against the base, take the exact union of one-sided changes, and hand only the
// conflicting elements (changed on both sides to different bits) to the tensor's strategy. A tensor is
// merged in blocks of a few MiB (docs/merge.md, "Memory"): each merged element depends only on the same
// element of base, ours and theirs, so only the statistics some strategies take over the whole tensor
// (TIES' thresholds and elected-sign majority, SLERP's angle) need passes of their own first.

import { dtypeBits, DType as FileDType } from '../format/dtype.js';
import * as K from '../kernels/index.js';
import { isDType as isKernelDType, isFloatDType, type Classify3Counts, type DiffStats, type DType as KernelDType } from '../kernels/types.js';
import type { Strategy } from './strategy.js';

export interface ElementCounts extends Classify3Counts {
  /** Elements in the tensor. */
  elements: number;
}

export interface ElementMerge {
  /** The merged tensor bytes, or null when conflicting elements remain (strategy `fail`, or not applicable). */
  data: Uint8Array | null;
  counts: ElementCounts;
  /** Why the strategy could not resolve the conflict, when it could not. */
  unresolved?: string;
}

/** The same span of base, ours and theirs. */
export interface SideBlocks {
  o: Uint8Array;
  a: Uint8Array;
  b: Uint8Array;
}

/** One tensor's three sides, read as many times as the strategy needs. */
export interface MergeSource {
  /** Bytes of each side. */
  bytes: number;
  /**
   * One pass from the start, in consecutive blocks of a whole number of elements: of `blockBytes` each
   * (but the last) when asked, else of any sizes.
   */
  blocks(blockBytes?: number): AsyncIterable<SideBlocks>;
}

/** Where merged blocks go, in order; `ours` is ours' bytes of the same span (a delta base for the store). */
export type MergedBlocks = (merged: Uint8Array, ours: Uint8Array) => Promise<void>;

/** The outcome of mergeBlocks: `merged` when every block went to the target. */
export interface BlockMerge {
  merged: boolean;
  counts: ElementCounts;
  unresolved?: string;
}

/**
 * Bitwise kernels only compare bit patterns, so any whole-byte dtype maps to the unsigned int of its size.
 * Sub-byte dtypes (F4, F6) pack several elements per byte and are classified byte by byte: their counts
 * are bytes, and a byte changed on both sides is a conflict even if the two changes touched different
 * elements in it.
 */
function bitwiseDType(dtype: FileDType): KernelDType {
  if (isKernelDType(dtype)) return dtype;
  switch (dtypeBits(dtype)) {
    case 16: return 'U16';
    case 32: return 'U32';
    case 64: return 'U64';
    default: return 'U8';
  }
}

/**
 * Merges one tensor block by block into `target`. The first pass classifies every element and, for a
 * strategy that needs nothing global, resolves and writes each block at once. A strategy with
 * whole-tensor statistics writes only once the first pass found conflicting elements and its own
 * passes gathered them; without conflicts it writes the exact union in a second pass. Strategy `fail`
 * (or one that does not apply) with conflicts writes nothing but still counts every element.
 */
export async function mergeBlocks(src: MergeSource, dtype: FileDType, strategy: Strategy, target: MergedBlocks): Promise<BlockMerge> {
  const bits = dtypeBits(dtype);
  const counts: ElementCounts = { changedA: 0, changedB: 0, same: 0, conflict: 0, signConflict: 0, elements: bits % 8 === 0 ? (src.bytes * 8) / bits : src.bytes };
  const unresolved = strategy.name === 'fail' ? 'strategy fail' : unsupported(dtype, strategy);
  const global = !unresolved && needsWholeTensor(strategy);
  let writing = !global;
  // TIES' first selection pass needs nothing yet: it rides along, in case there are conflicts.
  const selection = global && (strategy.name === 'ties' || strategy.name === 'protect') ? new TiesSelection(dtype as K.DType, Math.floor(strategy.density * counts.elements), counts.elements) : null;
  await passOver(src, dtype, async (blk, first) => {
    const { counts: c, masks } = await K.classify3(blk.o, blk.a, blk.b, bitwiseDType(dtype));
    for (const k of ['changedA', 'changedB', 'same', 'conflict', 'signConflict'] as const) counts[k] += c[k];
    if (c.conflict > 0 && unresolved) writing = false;
    if (writing) await target(await mergeBlock(blk, dtype, masks, c.conflict > 0 ? (o) => resolveBlock(o, dtype, strategy, first) : null), blk.a);
    await selection?.count(blk);
  });
  if (counts.conflict > 0 && unresolved) return { merged: false, counts, unresolved: strategy.name === 'fail' ? undefined : unresolved };
  if (!global) return { merged: true, counts };
  // Conflicts: the strategy's statistics first. None: every element is one side's, the union is exact.
  const stats = counts.conflict > 0 ? await wholeTensorStats(src, dtype, strategy, selection) : null;
  await passOver(src, dtype, async (blk, first) => {
    const { counts: c, masks } = await K.classify3(blk.o, blk.a, blk.b, bitwiseDType(dtype));
    await target(await mergeBlock(blk, dtype, masks, c.conflict > 0 ? (o) => resolveBlock(o, dtype, strategy, first, stats!) : null), blk.a);
  });
  return { merged: true, counts };
}

/** Runs `visit` on every block, with the element index of the block's first element. */
async function passOver(src: MergeSource, dtype: FileDType, visit: (blk: SideBlocks, first: number) => Promise<void>, blockBytes?: number): Promise<void> {
  const width = Math.max(1, dtypeBits(dtype) / 8); // sub-byte dtypes are merged by bytes (and never by DARE)
  let at = 0;
  for await (const blk of src.blocks(blockBytes)) {
    await visit(blk, at / width);
    at += blk.o.length;
  }
}

/**
 * The merged block: where theirs changed take theirs, else ours (exact for every element but the
 * conflicting ones), then the strategy's values at the conflicting elements.
 */
async function mergeBlock(blk: SideBlocks, dtype: FileDType, masks: K.Classify3Masks, resolve: ((blk: SideBlocks) => Promise<Uint8Array>) | null): Promise<Uint8Array> {
  const bitwise = bitwiseDType(dtype);
  const resolved = resolve ? await resolve(blk) : null;
  const union = await K.maskedCombine({ a: blk.a, b: blk.b, mask: masks.changedB, dtype: bitwise });
  if (!resolved) return union;
  return K.maskedCombine({ a: union, b: resolved, mask: masks.conflict, dtype: bitwise, out: union });
}

/** Why `s` cannot merge conflicting elements of this dtype, or undefined when it can. */
function unsupported(dtype: FileDType, s: Strategy): string | undefined {
  if (s.name === 'ours' || s.name === 'theirs' || s.name === 'base') return undefined;
  if (dtypeBits(dtype) % 8 !== 0) return `${dtype} packs several elements per byte; only ours, theirs or base can merge it`;
  if (!isFloatDType(dtype)) return `strategy ${s.name} needs a float tensor (F64, F32, F16, BF16), not ${dtype}`;
  return undefined;
}

function needsWholeTensor(s: Strategy): boolean {
  return s.name === 'ties' || s.name === 'protect' || s.name === 'dare-ties' || s.name === 'slerp';
}

/** What a strategy takes from the whole tensor before it can merge any block. */
interface TensorStats {
  /** TIES: each model's magnitude-key threshold, and the sign elected where kept deltas sum to 0. */
  thresholds?: bigint[];
  majority?: 1 | -1;
  /** SLERP: ||a||², ||b||², a·b over the tensor. */
  slerp?: DiffStats;
}

async function wholeTensorStats(src: MergeSource, dtype: FileDType, s: Strategy, selection: TiesSelection | null): Promise<TensorStats> {
  const dt = dtype as K.DType;
  if (s.name === 'slerp') {
    // In the kernels' own reduction blocks, added in order: the same sums as K.diffStats of the whole tensor.
    const parts: DiffStats[] = [];
    await passOver(src, dtype, async (blk) => void parts.push(await K.diffStats(blk.a, blk.b, dt)), K.REDUCTION_BLOCK_ELEMENTS * (dtypeBits(dtype) / 8));
    return { slerp: K.combineDiffStats(parts) };
  }
  // dare-ties trims nothing more after DARE (density 1); ties keeps each task vector's top floor(density n).
  if (selection) while (!selection.done) await passOver(src, dtype, (blk) => selection.count(blk));
  const thresholds = selection ? selection.thresholds() : [0n, 0n];
  let positive = 0, negative = 0;
  await passOver(src, dtype, async (blk, first) => {
    const models = s.name === 'dare-ties' ? await dareModels(blk, dt, s, first) : [blk.a, blk.b];
    const [p, q] = await K.tiesSigns({ dtype: dt, base: blk.o, models, thresholds });
    positive += p;
    negative += q;
  });
  return { thresholds, majority: positive >= negative ? 1 : -1 };
}

/**
 * Each side's magnitude-key threshold (the key of its keep-th largest delta) by radix selection, as
 * K.ties finds it on a tensor in memory: count() every block of the tensor for a pass (16 key bits,
 * both sides at once), and pass again until done.
 */
class TiesSelection {
  private readonly select: { prefix: bigint; rank: bigint }[];
  private readonly hists: BigUint64Array[];
  private shift: number;
  private seen = 0;

  constructor(private readonly dtype: K.DType, private readonly keep: number, private readonly n: number) {
    this.select = [0, 1].map(() => ({ prefix: 0n, rank: BigInt(keep) }));
    this.hists = this.select.map(() => new BigUint64Array(65536));
    this.shift = keep <= 0 || keep >= n ? -16 : K.TIES_KEY_BITS(dtype) - 16;
  }

  get done(): boolean {
    return this.shift < 0;
  }

  /** Counts the next block of the current pass; the pass's last block settles its 16 bits. */
  async count(blk: SideBlocks): Promise<void> {
    if (this.done) return;
    for (const [model, hist] of this.hists.entries()) {
      await K.tiesHistogram({ dtype: this.dtype, base: blk.o, models: [blk.a, blk.b], model, shift: this.shift, prefix: this.select[model]!.prefix, hist });
    }
    this.seen += blk.o.length;
    if (this.seen < this.n * K.DTYPE_SIZE[this.dtype]) return; // the pass goes on
    this.select.forEach((sel, model) => {
      const hist = this.hists[model]!;
      let bin = 65535;
      for (; bin > 0 && hist[bin]! < sel.rank; bin--) sel.rank -= hist[bin]!;
      sel.prefix = (sel.prefix << 16n) | BigInt(bin);
      hist.fill(0n);
    });
    this.seen = 0;
    this.shift -= 16;
  }

  thresholds(): bigint[] {
    if (this.keep <= 0) return [K.TIES_KEEP_NONE, K.TIES_KEEP_NONE];
    if (this.keep >= this.n) return [0n, 0n];
    return this.select.map((sel) => sel.prefix);
  }
}

/** DARE's drop-and-rescale of each side's task vector (side i uses seed + i), as dare-ties merges them. */
function dareModels(blk: SideBlocks, dtype: K.DType, s: Strategy, first: number): Promise<Uint8Array[]> {
  return Promise.all([blk.a, blk.b].map((m, i) => K.dare({ dtype, base: blk.o, models: [m], density: s.density, seed: s.seed + i, first })));
}

/** The strategy's value for every element of the block; only its conflicting elements are kept. */
async function resolveBlock(blk: SideBlocks, dtype: FileDType, s: Strategy, first: number, stats: TensorStats = {}): Promise<Uint8Array> {
  const { o, a, b } = blk;
  const dt = dtype as K.DType;
  switch (s.name) {
    case 'ours': return a;
    case 'theirs': return b;
    case 'base': return o;
    case 'fail': throw new Error('strategy fail resolves nothing'); // mergeBlocks never asks
    case 'average': return K.average({ dtype: dt, models: [a, b], weights: s.weights });
    case 'task-arithmetic': return K.taskArithmetic({ dtype: dt, base: o, models: [a, b], lambda: s.lambda });
    case 'dare': return K.dare({ dtype: dt, base: o, models: [a, b], density: s.density, seed: s.seed, lambda: s.lambda, first });
    case 'slerp': return K.slerp({ dtype: dt, a, b, t: s.t, stats: stats.slerp });
    case 'ties':
    case 'protect':
      return K.tiesMerge({ dtype: dt, base: o, models: [a, b], thresholds: stats.thresholds!, majority: stats.majority!, lambda: s.lambda });
    case 'dare-ties':
      // DARE's drop-and-rescale on each task vector, then TIES' sign election and disjoint mean without a
      // further trim (density 1), then lambda.
      return K.tiesMerge({ dtype: dt, base: o, models: await dareModels(blk, dt, s, first), thresholds: stats.thresholds!, majority: stats.majority!, lambda: s.lambda });
  }
}

/** Where mergeElements may write, to spare allocating a tensor-sized buffer (the size of `o`). */
export interface MergeBuffers {
  /** Receives the merged tensor; may be `b` itself. */
  out?: Uint8Array;
  /** Bytes per block (default: the whole tensor in one block); tests use small blocks. */
  blockBytes?: number;
}

/** mergeBlocks on a tensor in memory: the merged bytes, in `buffers.out` when given. */
export async function mergeElements(o: Uint8Array, a: Uint8Array, b: Uint8Array, dtype: FileDType, strategy: Strategy, buffers: MergeBuffers = {}): Promise<ElementMerge> {
  const width = Math.max(1, dtypeBits(dtype) / 8);
  const src: MergeSource = {
    bytes: o.length,
    async *blocks(blockBytes = buffers.blockBytes ?? o.length) {
      const step = Math.max(width, Math.floor(blockBytes / width) * width);
      for (let at = 0; at < o.length; at += step) yield { o: o.subarray(at, at + step), a: a.subarray(at, at + step), b: b.subarray(at, at + step) };
    },
  };
  const out = buffers.out ?? new Uint8Array(o.length);
  let at = 0;
  const r = await mergeBlocks(src, dtype, strategy, async (merged) => {
    out.set(merged, at);
    at += merged.length;
  });
  return { data: r.merged ? out : null, counts: r.counts, unresolved: r.unresolved };
}
