// Owns the element-level merge of one tensor changed on both sides (DESIGN.md "Merge semantics"):
// classify every element against the base, take the exact union of one-sided changes, and hand only the
// conflicting elements (changed on both sides to different bits) to the tensor's strategy.

import { dtypeBits, DType as FileDType } from '../format/dtype.js';
import * as K from '../kernels/index.js';
import { isDType as isKernelDType, isFloatDType, type Classify3Counts, type DType as KernelDType } from '../kernels/types.js';
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

/** Where mergeElements may write, to spare allocating tensor-sized buffers (each the size of `o`). */
export interface MergeBuffers {
  /** Receives the merged tensor; may be `b` itself. */
  out?: Uint8Array;
  /**
   * Receives the strategy's value for every element before the conflicting ones are picked out; may be
   * `o` itself (the kernels read each block of the base before they write it).
   */
  scratch?: Uint8Array;
}

/**
 * Merges one tensor changed on both sides. With `buffers` (the merge driver merges into theirs' own
 * buffer, with the base's as scratch) a tensor costs its three inputs and allocates nothing more.
 */
export async function mergeElements(o: Uint8Array, a: Uint8Array, b: Uint8Array, dtype: FileDType, strategy: Strategy, buffers: MergeBuffers = {}): Promise<ElementMerge> {
  const bitwise = bitwiseDType(dtype);
  const { counts: c, masks } = await K.classify3(o, a, b, bitwise);
  const bits = dtypeBits(dtype);
  const counts: ElementCounts = { ...c, elements: bits % 8 === 0 ? (o.length * 8) / bits : o.length };
  if (c.conflict > 0 && strategy.name === 'fail') return { data: null, counts };
  // The strategy reads b, so it runs before the union can overwrite it.
  const resolved = c.conflict > 0 ? await resolveAll(o, a, b, dtype, strategy, buffers.scratch) : null;
  if (typeof resolved === 'string') return { data: null, counts, unresolved: resolved };
  // Where theirs changed take theirs, else ours: exact for every element but the conflicting ones, which
  // then take the strategy's values. (If the strategy returned b itself and out is b, the union holds
  // theirs at every conflicting element already.)
  const union = await K.maskedCombine({ a, b, mask: masks.changedB, dtype: bitwise, out: buffers.out });
  if (!resolved) return { data: union, counts };
  return { data: await K.maskedCombine({ a: union, b: resolved, mask: masks.conflict, dtype: bitwise, out: union }), counts };
}

/** The strategy's result for every element; only its conflicting elements are kept. A string says why not. */
async function resolveAll(o: Uint8Array, a: Uint8Array, b: Uint8Array, dtype: FileDType, s: Strategy, out?: Uint8Array): Promise<Uint8Array | string> {
  switch (s.name) {
    case 'ours': return a;
    case 'theirs': return b;
    case 'base': return o;
    case 'fail': return 'strategy fail';
  }
  if (dtypeBits(dtype) % 8 !== 0) return `${dtype} packs several elements per byte; only ours, theirs or base can merge it`;
  if (!isFloatDType(dtype)) return `strategy ${s.name} needs a float tensor (F64, F32, F16, BF16), not ${dtype}`;
  switch (s.name) {
    case 'average': return K.average({ dtype, models: [a, b], weights: s.weights, out });
    case 'task-arithmetic': return K.taskArithmetic({ dtype, base: o, models: [a, b], lambda: s.lambda, out });
    case 'ties':
    case 'protect': return K.ties({ dtype, base: o, models: [a, b], density: s.density, lambda: s.lambda, out });
    case 'dare': return K.dare({ dtype, base: o, models: [a, b], density: s.density, seed: s.seed, lambda: s.lambda, out });
    case 'slerp': return K.slerp({ dtype, a, b, t: s.t, out });
    case 'dare-ties': {
      // DARE's drop-and-rescale on each task vector (model i uses seed + i), then TIES' sign election and
      // disjoint mean without a further trim (density 1), then lambda.
      const sparse = await Promise.all([a, b].map((m, i) => K.dare({ dtype, base: o, models: [m], density: s.density, seed: s.seed + i })));
      return K.ties({ dtype, base: o, models: sparse, density: 1, lambda: s.lambda, out });
    }
  }
}
