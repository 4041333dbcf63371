// Owns seeing a sharded checkpoint as one model in diffs, `git tensor log`, probes and fsck: which
// tracked files are the shards of which `*.safetensors.index.json` on each side of a comparison, the
// model's tensors keyed by name across its shards (a tensor that moved to another shard is the same
// tensor), and the index checked against what the shards hold (format/shard-index.ts).
//
// A side without the index but with the single file it stands for (`model.safetensors` beside
// `model.safetensors.index.json`) is the same model in one shard, so sharding a checkpoint, or joining
// its shards, shows no tensor change.

import { posix } from 'node:path';
import type { CheckpointSource, TensorEntry } from '../diff/analyze.js';
import type { ShardSummary } from '../diff/types.js';
import { GitTensorError } from '../errors/index.js';
import { tensorByteLength } from '../format/safetensors.js';
import { checkShardIndex, indexProblemHint, isShardIndexPath, parseShardIndex, type IndexProblem, type ShardContents, type ShardIndex, unshardedName } from '../format/shard-index.js';
import type { DType } from '../format/dtype.js';
import type { Version } from './diff.js';

/** The files of one side of a comparison: tracked checkpoints as versions, and the shard indexes' text. */
export interface SideFiles {
  versions: Map<string, Version>;
  /** index path -> its text and blob id (no blob for a working-tree file). */
  indexes: Map<string, { text: string; blob?: string }>;
}

export interface ModelSide {
  /** null for the single-file form of the model (no index on this side). */
  index: ShardIndex | null;
  indexBlob?: string;
  /** The index does not parse: the model's tensors are unknown on this side. */
  error?: GitTensorError;
  /** Shard file name (in the model's folder) -> its version; null when the index names a file that is not there. */
  shards: Map<string, Version | null>;
}

export interface ShardedModel {
  /** Repository-relative path of the index: the model's name in reports. */
  index: string;
  dir: string;
  old: ModelSide | null;
  new: ModelSide | null;
}

function inDir(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}

function dirOf(path: string): string {
  const d = posix.dirname(path);
  return d === '.' ? '' : d;
}

function sideOf(files: SideFiles, indexPath: string): ModelSide | null {
  const dir = dirOf(indexPath);
  const entry = files.indexes.get(indexPath);
  if (!entry) {
    const single = inDir(dir, unshardedName(posix.basename(indexPath)));
    const v = files.versions.get(single);
    return v ? { index: null, shards: new Map([[posix.basename(single), v]]) } : null;
  }
  try {
    const index = parseShardIndex(entry.text, indexPath);
    const shards = new Map<string, Version | null>();
    for (const s of index.shards) shards.set(s, files.versions.get(inDir(dir, s)) ?? null);
    return { index, indexBlob: entry.blob, shards };
  } catch (err) {
    if (!(err instanceof GitTensorError)) throw err;
    return { index: null, indexBlob: entry.blob, error: err, shards: new Map() };
  }
}

/** The sharded models of a comparison: every index on either side, with each side's shards. */
export function findModels(oldFiles: SideFiles | null, newFiles: SideFiles): ShardedModel[] {
  const paths = [...new Set([...(oldFiles?.indexes.keys() ?? []), ...newFiles.indexes.keys()])].filter(isShardIndexPath).sort();
  return paths.map((index) => ({ index, dir: dirOf(index), old: oldFiles ? sideOf(oldFiles, index) : null, new: sideOf(newFiles, index) }));
}

/** Repository-relative paths of the shards (and single-file forms) the models account for. */
export function modelPaths(models: readonly ShardedModel[]): Set<string> {
  const out = new Set<string>();
  for (const m of models) for (const side of [m.old, m.new]) for (const name of side?.shards.keys() ?? []) out.add(inDir(m.dir, name));
  return out;
}

/** True when nothing of the model differs between the sides (same index blob, same shard versions). */
export function modelUnchanged(m: ShardedModel, same: (a: Version, b: Version) => boolean): boolean {
  if (!m.old || !m.new || m.old.error || m.new.error) return false;
  if ((m.old.indexBlob ?? '') !== (m.new.indexBlob ?? '') || !m.old.indexBlob || m.old.shards.size !== m.new.shards.size) return false;
  for (const [name, v] of m.new.shards) {
    const o = m.old.shards.get(name);
    if (!v || !o || !same(o, v)) return false;
  }
  return true;
}

/** What a shard holds, for the index check: from its pointer (with ids) or its source's header. */
function contentsOf(v: Version, source: () => CheckpointSource | null): ShardContents | 'opaque' {
  if (v.type === 'pointer') {
    if (v.pointer.kind !== 'safetensors') return 'opaque';
    return { tensors: v.pointer.tensors.map((t) => ({ name: t.name, byteLength: byteLength(t.dtype, t.shape), id: t.id })) };
  }
  const s = source();
  if (!s) return 'opaque';
  return { tensors: s.tensors.map((t) => ({ name: t.name, byteLength: byteLength(t.dtype, t.shape) })) };
}

function byteLength(dtype: string, shape: number[]): number {
  try {
    return tensorByteLength(dtype as DType, shape);
  } catch {
    return 0; // an invalid pointer line; validatePointer names it when the shard is read
  }
}

/** The index checks of one side (none for a single-file side); a parse error is one error. */
export function sideProblems(side: ModelSide, indexPath: string, source: (name: string, v: Version) => CheckpointSource | null): IndexProblem[] {
  if (side.error) return [{ severity: 'error', code: 'E_SHARD_INDEX', message: side.error.message }];
  if (!side.index) return [];
  const shards = new Map<string, ShardContents | null | 'opaque'>();
  for (const [name, v] of side.shards) shards.set(name, v ? contentsOf(v, () => source(name, v)) : null);
  return checkShardIndex(side.index, shards, indexPath);
}

export interface ModelSources {
  old: CheckpointSource | null;
  new: CheckpointSource | null;
  summary: ShardSummary;
}

interface Placed {
  entry: TensorEntry;
  shard: string;
}

/** A side's tensors by name, each from the shard its weight_map names (else the first shard holding it). */
function placeTensors(side: ModelSide, sources: Map<string, CheckpointSource>): Map<string, Placed> {
  const out = new Map<string, Placed>();
  for (const [shard, s] of sources) {
    for (const entry of s.tensors) {
      const mapped = side.index?.weightMap.get(entry.name);
      if (!out.has(entry.name) || mapped === shard) out.set(entry.name, { entry, shard });
    }
  }
  return out;
}

/**
 * The model's two sides as single checkpoint sources keyed by tensor name. With `focus` (git's diff
 * driver, called once per shard file), only the tensors the new side keeps in that shard, plus those the
 * old side kept there that the new model lacks: across all the shards' calls, each tensor is reported
 * once, under the shard that holds it now.
 */
export function modelSources(m: ShardedModel, opts: {
  sourceOf: (name: string, v: Version) => CheckpointSource;
  focus?: { old: string; new: string };
}): ModelSources {
  const load = (side: ModelSide | null) => {
    const sources = new Map<string, CheckpointSource>();
    for (const [name, v] of side?.shards ?? []) if (v) sources.set(name, opts.sourceOf(name, v));
    return { sources, placed: side ? placeTensors(side, sources) : new Map<string, Placed>() };
  };
  const o = load(m.old), n = load(m.new);
  const focus = opts.focus;
  const keepNew = (p: Placed) => !focus || p.shard === focus.new;
  const newList = [...n.placed.values()].filter(keepNew);
  const newNames = new Set(newList.map((p) => p.entry.name));
  const oldList = [...o.placed.values()].filter((p) => !focus || newNames.has(p.entry.name) || (p.shard === focus.old && !n.placed.has(p.entry.name)));

  const moved: ShardSummary['moved'] = [];
  for (const [name, p] of n.placed) {
    const was = o.placed.get(name);
    if (!was || was.shard === p.shard) continue;
    if (!focus || p.shard === focus.new || was.shard === focus.old) moved.push({ tensor: name, from: was.shard, to: p.shard });
  }
  const build = (side: ModelSide | null, list: Placed[], sources: Map<string, CheckpointSource>): CheckpointSource | null => {
    if (!side || side.error) return null;
    const byName = new Map(list.map((p) => [p.entry.name, p]));
    const all = [...sources.values()];
    return {
      size: focus ? sources.get(focus.new)?.size ?? sources.get(focus.old)?.size ?? 0 : all.reduce((a, s) => a + s.size, 0),
      id: side.indexBlob?.slice(0, 10) ?? all[0]?.id,
      metadata: mergedMetadata(all),
      tensors: list.map((p) => p.entry),
      read: (t) => {
        const p = byName.get(t.name)!;
        return sources.get(p.shard)!.read(p.entry);
      },
      readRange: (t, begin, end) => {
        const p = byName.get(t.name)!;
        const source = sources.get(p.shard)!;
        return source.readRange ? source.readRange(p.entry, begin, end) : Promise.resolve(source.read(p.entry)).then((b) => b.subarray(begin, end));
      },
      stream: (t) => {
        const p = byName.get(t.name)!;
        const source = sources.get(p.shard)!;
        return source.stream ? source.stream(p.entry) : (async function* () {
          yield await source.read(p.entry);
        })();
      },
    };
  };
  const count = (side: ModelSide | null) => (side && !side.error ? side.shards.size : null);
  return {
    old: build(m.old, oldList, o.sources),
    new: build(m.new, newList, n.sources),
    summary: { index: m.index, old: count(m.old), new: count(m.new), focus: focus?.new, moved, problems: [] },
  };
}

/** Metadata of the model: each key's value when the shards agree on it, else their values joined. */
function mergedMetadata(sources: CheckpointSource[]): [string, string][] | null {
  if (sources.every((s) => s.metadata === null)) return null;
  const values = new Map<string, string[]>();
  for (const s of sources) for (const [k, v] of s.metadata ?? []) values.set(k, [...(values.get(k) ?? []), v]);
  return [...values].map(([k, vs]) => [k, [...new Set(vs)].join(' | ')]);
}

/** Adds the new side's index problems and their hint (the old side's were reported when it was new). */
export function withProblems(summary: ShardSummary, m: ShardedModel, source: (name: string, v: Version) => CheckpointSource | null): ShardSummary {
  const side = m.new;
  const problems = side ? sideProblems(side, m.index, source) : [];
  return { ...summary, problems, hint: indexProblemHint(problems, m.index) ?? undefined };
}
