// Owns reading a checkpoint from disk for the engine (`git tensor probe --path`, tests): one safetensors
// file, or a sharded checkpoint through its `model.safetensors.index.json`. Only headers are held in
// memory; each tensor is read from its file when the engine binds it, so a model never sits in memory
// twice (raw bytes and F32) longer than one tensor at a time.

import { promises as fs, readSync } from 'node:fs';
import path from 'node:path';

import { readHeaderAt } from '../format/safetensors.js';
import { checkShardIndex, indexProblemHint, parseShardIndex } from '../format/shard-index.js';
import { ModelError } from './errors.js';
import type { TensorInfo, TensorSource } from './types.js';

interface Located {
  info: TensorInfo;
  file: string;
  /** Absolute byte offset of the tensor's data in `file`. */
  offset: number;
  byteLength: number;
}

async function openChecked(file: string): Promise<fs.FileHandle> {
  try {
    return await fs.open(file, 'r');
  } catch (err) {
    throw new ModelError('E_MODEL_TENSOR', file, `cannot read the checkpoint: ${(err as Error).message}`);
  }
}

async function readFileHeader(file: string): Promise<Located[]> {
  const handle = await openChecked(file);
  try {
    const { size } = await handle.stat();
    // Headers are small: read them synchronously through the handle's descriptor.
    const header = readHeaderAt((b, at) => readSync(handle.fd, b, 0, b.length, at), size, file);
    return header.tensors.map((t) => ({
      info: { name: t.name, dtype: t.dtype, shape: t.shape },
      file,
      offset: header.dataStart + t.begin,
      byteLength: t.end - t.begin,
    }));
  } finally {
    await handle.close();
  }
}

async function readRange(loc: Located): Promise<Uint8Array> {
  const handle = await openChecked(loc.file);
  try {
    const out = new Uint8Array(loc.byteLength);
    let done = 0;
    while (done < out.length) {
      const { bytesRead } = await handle.read(out, done, out.length - done, loc.offset + done);
      if (bytesRead === 0) throw new ModelError('E_MODEL_TENSOR', loc.file, `tensor ${loc.info.name} is cut short (file changed while reading?)`);
      done += bytesRead;
    }
    return out;
  } finally {
    await handle.close();
  }
}

/**
 * The tensors of `file`: a `.safetensors` file, or a `*.index.json` whose `weight_map` names the shard of
 * each tensor (shards are read relative to the index's folder).
 */
export async function fileTensorSource(file: string): Promise<TensorSource> {
  const located = new Map<string, Located>();
  if (file.endsWith('.json')) {
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      throw new ModelError('E_MODEL_CONFIG', file, `not a readable shard index: ${(err as Error).message}`);
    }
    const index = parseShardIndex(text, file);
    const held = new Map<string, Located[] | null>();
    for (const shard of index.shards) {
      const shardFile = path.join(path.dirname(file), shard);
      held.set(shard, await fs.stat(shardFile).then(() => readFileHeader(shardFile), () => null));
    }
    const contents = new Map([...held].map(([shard, locs]) => [shard, locs && { tensors: locs.map((l) => ({ name: l.info.name, byteLength: l.byteLength })) }]));
    // Errors only: the engine binds the tensors the weight_map names, so warnings change nothing here.
    const errors = checkShardIndex(index, contents, 'the index').filter((p) => p.severity === 'error');
    if (errors.length) {
      throw new ModelError('E_MODEL_TENSOR', file, errors.map((e) => e.message).join('; '), { data: { tensor: errors[0]!.tensor }, hint: indexProblemHint(errors, path.basename(file)) ?? undefined });
    }
    for (const [name, shard] of index.weightMap) {
      const loc = held.get(shard)?.find((l) => l.info.name === name);
      if (loc) located.set(name, loc);
    }
  } else {
    for (const loc of await readFileHeader(file)) located.set(loc.info.name, loc);
  }
  return {
    list: async () => [...located.values()].map((l) => l.info),
    read: async (name) => {
      const loc = located.get(name);
      if (!loc) throw new ModelError('E_MODEL_TENSOR', file, `no tensor named ${name}`, { data: { tensor: name } });
      return readRange(loc);
    },
  };
}
