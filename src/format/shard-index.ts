// Owns the shard index of a sharded Hugging Face checkpoint (`model.safetensors.index.json`, as
// transformers' save_pretrained and huggingface_hub's save_torch_state_dict write it):
//   { "metadata": { "total_size": <bytes of all tensors>, ... }, "weight_map": { "<tensor>": "<shard file>", ... } }
// parsed strictly, and checked against the tensors its shards really hold. Pure: callers read the index
// and list each shard's tensors (from pointers or file headers); this module judges them.
//
// Errors and warnings (docs/diff.md, "Sharded checkpoints"): an error is what makes a loader that follows
// the weight_map fail or pick weights by chance (a shard that is not there, a tensor mapped to a shard
// that does not hold it, one name with different values in two shards); a warning is an inconsistency
// loaders survive (a tensor no entry maps, the same tensor stored twice, a wrong total_size, which
// transformers only shows as a size).

import { GitTensorError, ExitCode } from '../errors/index.js';

/** File names that are shard indexes: `model.safetensors.index.json`, `diffusion_pytorch_model.safetensors.index.json`, ... */
export const SHARD_INDEX_SUFFIX = '.safetensors.index.json';

export function isShardIndexPath(path: string): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return name.endsWith(SHARD_INDEX_SUFFIX) && name.length > SHARD_INDEX_SUFFIX.length;
}

/** The single-file checkpoint an index stands for (`model.safetensors` for `model.safetensors.index.json`). */
export function unshardedName(indexName: string): string {
  return indexName.slice(0, -'.index.json'.length);
}

export interface ShardIndex {
  /** tensor name -> shard file name (in the index's folder). */
  weightMap: Map<string, string>;
  /** Shard file names in first-use order. */
  shards: string[];
  /** `metadata.total_size` as written (a number when the file has a valid one, undefined when absent). */
  totalSize: number | undefined;
  /** `metadata.total_size` is present but not a non-negative integer. */
  badTotalSize: boolean;
}

export class ShardIndexError extends GitTensorError {
  constructor(file: string, what: string) {
    super('E_SHARD_INDEX', `${file}: ${what}`, {
      data: { file },
      exitCode: ExitCode.badInput,
      hint: `Fix ${file} (it must be {"metadata": {"total_size": N}, "weight_map": {"<tensor>": "<shard>.safetensors"}}), or save the model again with save_pretrained.`,
    });
  }
}

/** Parses an index's text; throws ShardIndexError (exit 3) naming the file and what is wrong. */
export function parseShardIndex(text: string, file: string): ShardIndex {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ShardIndexError(file, `not JSON (${(err as Error).message})`);
  }
  if (!isObject(json)) throw new ShardIndexError(file, 'not a JSON object');
  const map = json.weight_map;
  if (!isObject(map)) throw new ShardIndexError(file, 'no "weight_map" object');
  const weightMap = new Map<string, string>();
  const shards: string[] = [];
  const seen = new Set<string>();
  for (const [tensor, shard] of Object.entries(map)) {
    if (typeof shard !== 'string') throw new ShardIndexError(file, `weight_map maps ${JSON.stringify(tensor)} to ${JSON.stringify(shard)}, not a file name`);
    // Shards live beside the index: a path elsewhere would let a committed index point outside the model.
    if (!shard || shard === '.' || shard === '..' || /[/\\\0]/.test(shard)) throw new ShardIndexError(file, `weight_map maps ${JSON.stringify(tensor)} to ${JSON.stringify(shard)}, not a file name beside the index`);
    if (!seen.has(shard)) shards.push(shard);
    seen.add(shard);
    weightMap.set(tensor, shard);
  }
  const meta = json.metadata;
  if (meta !== undefined && meta !== null && !isObject(meta)) throw new ShardIndexError(file, '"metadata" is not an object');
  const raw = isObject(meta) ? meta.total_size : undefined;
  const valid = typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0;
  return { weightMap, shards, totalSize: valid ? raw : undefined, badTotalSize: raw !== undefined && raw !== null && !valid };
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** What one shard holds, as its pointer or header lists it. */
export interface ShardContents {
  tensors: { name: string; byteLength: number; id?: string }[];
}

export type IndexProblemCode =
  | 'E_SHARD_INDEX'
  | 'E_SHARD_MISSING'
  | 'E_SHARD_NOT_CHECKPOINT'
  | 'E_SHARD_TENSOR_MISSING'
  | 'E_SHARD_TENSOR_TWICE'
  | 'E_SHARD_TENSOR_UNMAPPED'
  | 'E_SHARD_TOTAL_SIZE';

export interface IndexProblem {
  severity: 'error' | 'warning';
  code: IndexProblemCode;
  /** One line naming the index, the tensor and the shard(s). */
  message: string;
  tensor?: string;
  shard?: string;
}

/**
 * Checks `index` (read from `file`) against its shards: `shards` maps each shard file name to what it
 * holds, `null` when the file is not there, `'opaque'` when it is there but is not a safetensors
 * checkpoint. Shards the index does not name may be given too (their tensors count as unmapped).
 * Problems come in a fixed order: shards, then tensors by name, then the total size.
 */
export function checkShardIndex(index: ShardIndex, shards: ReadonlyMap<string, ShardContents | null | 'opaque'>, file: string): IndexProblem[] {
  const problems: IndexProblem[] = [];
  const holders = new Map<string, { shard: string; byteLength: number; id?: string }[]>();
  for (const shard of index.shards) {
    const c = shards.get(shard);
    if (c === null || c === undefined) {
      problems.push({ severity: 'error', code: 'E_SHARD_MISSING', shard, message: `${file} names shard ${shard}, which is not there` });
    } else if (c === 'opaque') {
      problems.push({ severity: 'error', code: 'E_SHARD_NOT_CHECKPOINT', shard, message: `${file} names shard ${shard}, which is not a safetensors checkpoint` });
    }
  }
  for (const [shard, c] of shards) {
    if (!c || c === 'opaque') continue;
    for (const t of c.tensors) {
      const list = holders.get(t.name) ?? [];
      list.push({ shard, byteLength: t.byteLength, id: t.id });
      holders.set(t.name, list);
    }
  }
  const names = [...new Set([...index.weightMap.keys(), ...holders.keys()])].sort();
  let total = 0;
  let totalKnown = true;
  for (const name of names) {
    const mapped = index.weightMap.get(name);
    const held = holders.get(name) ?? [];
    if (mapped !== undefined) {
      const at = held.find((h) => h.shard === mapped);
      const present = shards.get(mapped);
      if (at) total += at.byteLength;
      else totalKnown = false;
      // A missing shard is reported once, above, not once per tensor.
      if (!at && present && present !== 'opaque') {
        const elsewhere = held.map((h) => h.shard);
        problems.push({
          severity: 'error', code: 'E_SHARD_TENSOR_MISSING', tensor: name, shard: mapped,
          message: `${file} maps tensor ${name} to ${mapped}, which does not hold it` + (elsewhere.length ? ` (it is in ${elsewhere.join(', ')})` : ''),
        });
      }
    } else if (held.length) {
      problems.push({
        severity: 'warning', code: 'E_SHARD_TENSOR_UNMAPPED', tensor: name, shard: held[0]!.shard,
        message: `tensor ${name} in ${held.map((h) => h.shard).join(', ')} is not in ${file}'s weight_map (loaders that follow the index skip it)`,
      });
    }
    if (held.length > 1) {
      // Ids are known for committed shards; files on disk are not hashed, so their copies count as alike.
      const known = held.every((h) => h.id !== undefined);
      const differ = known && held.some((h) => h.id !== held[0]!.id);
      problems.push({
        severity: differ ? 'error' : 'warning', code: 'E_SHARD_TENSOR_TWICE', tensor: name, shard: held[1]!.shard,
        message: `tensor ${name} is in ${held.length} shards (${held.map((h) => h.shard).join(', ')})` +
          (differ ? ' with different values' : known ? ' with the same values' : '') + (mapped ? `; ${file} maps it to ${mapped}` : ''),
      });
    }
  }
  if (index.badTotalSize) {
    problems.push({ severity: 'warning', code: 'E_SHARD_TOTAL_SIZE', message: `${file}: metadata.total_size is not a byte count` });
  } else if (index.totalSize !== undefined && totalKnown && total !== index.totalSize) {
    problems.push({ severity: 'warning', code: 'E_SHARD_TOTAL_SIZE', message: `${file}: metadata.total_size is ${index.totalSize}, but the mapped tensors hold ${total} bytes` });
  }
  return problems;
}

/** The next step for a list of problems of one index (null when there are none). */
export function indexProblemHint(problems: readonly IndexProblem[], file: string): string | null {
  if (!problems.length) return null;
  if (problems.some((p) => p.code === 'E_SHARD_MISSING')) {
    return `Add the missing shard(s) (\`git add <shard>\`) or remove them from ${file}'s weight_map; \`git tensor ls\` lists what each shard holds.`;
  }
  return `Make ${file}'s weight_map name each tensor's shard (\`git tensor ls\` lists what each shard holds), or save the model again with save_pretrained.`;
}
