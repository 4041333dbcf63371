// Owns the three-way merge of one checkpoint: runs the structural plan, merges changed tensors element by
// element through the kernels, writes the merged tensors and header to the store, and returns the merged
// pointer with a per-tensor report. Used by the merge driver (during `git merge`) and by `resolve`.
// A tensor is read from the store and merged in blocks of a few MiB (docs/merge.md, "Memory").

import { MissingObjectsError } from '../errors/index.js';
import type { DType } from '../format/dtype.js';
import { parseHeader, serializeHeader, tensorByteLength } from '../format/safetensors.js';
import { Pointer, PointerTensor, serializePointer } from '../format/pointer.js';
import { storeBlob, validatePointer } from '../store/checkpoint.js';
import { ObjectStore, ObjectWriter } from '../store/store.js';
import { TensorSink } from '../store/tensor-sink.js';
import { ByteBlocks } from '../diff/blocks.js';
import { ElementCounts, mergeBlocks, type MergeSource } from './elementwise.js';
import { planMetadata, planTensors, Side, TensorPlan } from './plan.js';
import { MergeRule, Strategy, StrategyName, StrategyParams, strategyFor } from './strategy.js';

type SafetensorsPointer = Extract<Pointer, { kind: 'safetensors' }>;

export interface MergeInput {
  path: string;
  base: SafetensorsPointer | null;
  ours: SafetensorsPointer;
  theirs: SafetensorsPointer;
  rules: MergeRule[];
  /** Applied after the rules (GIT_TENSOR_MERGE, resolve flags) to the tensors `only` selects. */
  override?: StrategyParams;
  /** Restricts `override` to some tensors (resolve --tensor). */
  only?: (tensor: string) => boolean;
}

export type TensorOutcome = 'ours' | 'theirs' | 'base' | 'dropped' | 'union' | 'resolved' | 'conflict';

export interface TensorReport {
  name: string;
  outcome: TensorOutcome;
  /** The strategy that decided the tensor, when one had to. */
  strategy?: StrategyName;
  /** Element counts for tensors both sides changed. */
  counts?: ElementCounts;
  /** Why a structural conflict is one. */
  reason?: string;
}

export interface MergeOutcome {
  pointer: string;
  clean: boolean;
  tensors: TensorReport[];
  metadataConflicts: { key: string; base?: string; ours?: string; theirs?: string }[];
}

export async function mergeCheckpoint(store: ObjectStore, writer: ObjectWriter, input: MergeInput): Promise<MergeOutcome> {
  // A malformed or hand-edited side (unknown dtype, a name twice, an object of another size) is refused
  // before planning; objects not here yet are checked when the merge runs again after fetching them.
  for (const side of [input.base, input.ours, input.theirs]) if (side) validatePointer(store, side, input.path);
  const plans = planTensors({ base: input.base?.tensors ?? null, ours: input.ours.tensors, theirs: input.theirs.tensors });
  const needed = plans.flatMap((p) => (p.action === 'elementwise' ? [p.base.id, p.ours.id, p.theirs.id] : []));
  const missing = store.missing(needed);
  if (missing.length) throw new MissingObjectsError(missing, { file: input.path });

  const strategyOf = (name: string): Strategy =>
    strategyFor(input.rules, input.path, name, !input.only || input.only(name) ? input.override : {});

  const result: PointerTensor[] = [];
  const reports: TensorReport[] = [];
  for (const plan of plans) {
    const { tensor, report } = await mergeTensor(store, writer, plan, strategyOf(plan.name), input.path);
    if (tensor) result.push(tensor);
    reports.push(report);
  }

  // `__metadata__` follows the strategy rules select for that name: a side strategy settles its conflicts.
  const metaStrategy = strategyOf('__metadata__').name;
  const settle = metaStrategy === 'ours' || metaStrategy === 'theirs' || metaStrategy === 'base' ? metaStrategy : undefined;
  const meta = planMetadata(input.base?.metadata ?? null, input.ours.metadata, input.theirs.metadata, settle);
  const pointer = buildPointer(writer, input, result, meta.merged);
  const clean = reports.every((r) => r.outcome !== 'conflict') && meta.conflicts.length === 0;
  return { pointer, clean, tensors: reports, metadataConflicts: meta.conflicts };
}

const pick = (plan: TensorPlan, side: Side): PointerTensor | undefined => (plan.action === 'elementwise' || plan.action === 'conflict' ? plan[side] : undefined);

/** Bytes of each side a merge holds at once, about (a whole number of the merged tensor's chunks). */
const MERGE_BLOCK_BYTES = 4 * 1024 * 1024;

/** A tensor's three sides streamed from the store (decoded a window at a time), a pass per call. */
function storeSides(store: ObjectStore, ids: [string, string, string], bytes: number, blockBytes: number, data: { file: string; tensor: string }): MergeSource {
  return {
    bytes,
    async *blocks(size = blockBytes) {
      const [o, a, b] = ids.map((id) => new ByteBlocks(store.streamChunks(id, data), data.tensor));
      for (let at = 0; at < bytes; at += size) {
        const n = Math.min(size, bytes - at);
        const [bo, ba, bb] = await Promise.all([o!.take(n), a!.take(n), b!.take(n)]);
        yield { o: bo, a: ba, b: bb };
      }
      await Promise.all([o!.end(), a!.end(), b!.end()]);
    },
  };
}

async function mergeTensor(store: ObjectStore, writer: ObjectWriter, plan: TensorPlan, strategy: Strategy, path: string): Promise<{ tensor?: PointerTensor; report: TensorReport }> {
  const name = plan.name;
  switch (plan.action) {
    case 'take':
      return { tensor: plan.tensor, report: { name, outcome: plan.from } };
    case 'drop':
      return { report: { name, outcome: 'dropped' } };
    case 'conflict': {
      // Only a side can settle a structural conflict; arithmetic needs equal shapes.
      if (strategy.name === 'ours' || strategy.name === 'theirs' || strategy.name === 'base') {
        const side = strategy.name;
        const tensor = pick(plan, side);
        return { tensor, report: { name, outcome: tensor ? side : 'dropped', strategy: strategy.name, reason: plan.reason } };
      }
      return { tensor: plan.ours, report: { name, outcome: 'conflict', reason: plan.reason, strategy: strategy.name } };
    }
    case 'elementwise': {
      const { base, ours, theirs } = plan;
      const dtype = ours.dtype as DType;
      const bytes = tensorByteLength(dtype, ours.shape);
      // Blocks of whole chunks, so that each block's chunks are stored (delta-encoded against ours' chunk
      // at the same place, which the block holds) as soon as it is merged.
      const sink = new TensorSink(writer, dtype, ours.shape, ours);
      const blockBytes = Math.max(1, Math.floor(MERGE_BLOCK_BYTES / sink.chunkBytes)) * sink.chunkBytes;
      const src = storeSides(store, [base.id, ours.id, theirs.id], bytes, blockBytes, { file: path, tensor: name });
      const merged = await mergeBlocks(src, dtype, strategy, (block, oursBlock) => sink.push(block, oursBlock));
      if (!merged.merged) {
        return { tensor: ours, report: { name, outcome: 'conflict', counts: merged.counts, strategy: strategy.name, reason: `${merged.counts.conflict} element(s) changed differently on both sides` } };
      }
      const id = await sink.finish();
      const outcome: TensorOutcome = merged.counts.conflict === 0 ? 'union' : 'resolved';
      return { tensor: { ...ours, id }, report: { name, outcome, counts: merged.counts, strategy: outcome === 'resolved' ? strategy.name : undefined } };
    }
  }
}

/** Reuses a side's exact header bytes when the merged layout and metadata equal that side's, else writes one. */
function buildPointer(writer: ObjectWriter, input: MergeInput, tensors: PointerTensor[], metadata: [string, string][] | null): string {
  const layoutKey = (ts: PointerTensor[], md: [string, string][] | null) =>
    JSON.stringify([[...ts].map((t) => [t.name, t.dtype, t.shape]).sort(), md]);
  const key = layoutKey(tensors, metadata);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  for (const side of [input.ours, input.theirs, input.base]) {
    if (side && layoutKey(side.tensors, side.metadata) === key) {
      return serializePointer({ ...side, metadata, tensors: side.tensors.map((t) => byName.get(t.name)!) });
    }
  }
  const header = serializeHeader(
    tensors.map((t) => ({ name: t.name, dtype: t.dtype as DType, shape: t.shape, byteLength: tensorByteLength(t.dtype as DType, t.shape) })),
    metadata === null ? null : Object.fromEntries(metadata),
    { file: input.path },
  );
  const headerId = storeBlob(writer, header.headerBytes);
  // Parse our own header back: pointer order and the metadata order then come from the bytes, as clean would.
  const parsed = parseHeader(header.headerBytes, { file: input.path });
  return serializePointer({
    kind: 'safetensors',
    size: 8 + header.headerBytes.length + header.dataLength,
    header: { id: headerId, length: header.headerBytes.length },
    metadata: parsed.metadata === null ? null : Object.entries(parsed.metadata),
    tensors: parsed.tensors.map((t) => byName.get(t.name)!),
  });
}
