// The engine holds a checkpoint's F16/BF16 matrices as stored (half the memory of widening them to F32 at
// load) and widens them inside the kernels. The oracle is the engine's own earlier behaviour: the same
// checkpoint with every tensor widened to F32 before the engine sees it must give bit for bit the same
// logits, for every model of test/fixtures/models and the real ones of ../shared/fixtures/models, cast to
// F16 and to BF16 (so Conv1D transposes, tied heads, untied heads and position tables are all covered).
// Those models' agreement with an independent reference is reference-models.test.ts / real-models.test.ts.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { fromF32, isFloatDType, toF32 } from '../../../src/kernels/index.js';
import { fileTensorSource, type TensorInfo, type TensorSource } from '../../../src/model/index.js';
import { WeightBinder } from '../../../src/model/weights.js';
import { PROJECT_ROOT } from '../../helpers/repo.js';
import { sharedDir } from '../../helpers/shared.js';
import { loadModelDir, readJson } from './helpers.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'models');
const REAL = sharedDir('fixtures', 'models');

const modelDirs = [
  ...readdirSync(FIXTURES, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => join(FIXTURES, d.name)),
  ...(REAL.skip ? [] : readdirSync(REAL.dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => join(REAL.dir, d.name))),
].filter((d) => existsSync(join(d, 'expected.json'))).sort();

/** A source whose float tensors are `dtype`, rounded to nearest even when stored otherwise. */
function castSource(src: TensorSource, dtype: 'F16' | 'BF16'): TensorSource {
  return {
    list: async () => (await src.list()).map((t) => (isFloatDType(t.dtype) ? { ...t, dtype } : t)),
    async read(name) {
      const info = (await src.list()).find((t) => t.name === name)!;
      const bytes = await src.read(name);
      if (info.dtype === dtype || !isFloatDType(info.dtype)) return bytes;
      return fromF32(await toF32(bytes, info.dtype), dtype);
    },
  };
}

/** The same tensors widened to F32 before the engine sees them: what the engine held before. */
function widenedSource(src: TensorSource): TensorSource {
  return {
    list: async () => (await src.list()).map((t) => (isFloatDType(t.dtype) ? { ...t, dtype: 'F32' } : t)),
    async read(name) {
      const info = (await src.list()).find((t) => t.name === name)!;
      const bytes = await src.read(name);
      if (!isFloatDType(info.dtype)) return bytes;
      const f32 = await toF32(bytes, info.dtype);
      return new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
    },
  };
}

async function checkpointOf(dir: string): Promise<TensorSource> {
  return fileTensorSource(join(dir, existsSync(join(dir, 'model.safetensors.index.json')) ? 'model.safetensors.index.json' : 'model.safetensors'));
}

/** Every case's ids of expected.json as one batch, logits at every position. */
function batchOf(dir: string): { ids: number[]; positions: number[] }[] {
  return (readJson(dir, 'expected.json').cases as { ids: number[] }[]).map((c) => ({ ids: c.ids, positions: c.ids.map((_, i) => i) }));
}

describe.each(modelDirs.map((d) => [d.split('/').slice(-2).join('/'), d] as const))('%s', (_, dir) => {
  it.each(['BF16', 'F16'] as const)('as %s: logits bit for bit those of the checkpoint widened to F32 first', async (dtype) => {
    const half = castSource(await checkpointOf(dir), dtype);
    const asHalf = await loadModelDir(dir, { tensors: half });
    const asF32 = await loadModelDir(dir, { tensors: widenedSource(half) });
    const batch = batchOf(dir);
    const got = await asHalf.logits(batch), want = await asF32.logits(batch);
    for (let i = 0; i < batch.length; i++) {
      expect(got[i]!.length).toBe(want[i]!.length);
      expect(Buffer.from(got[i]!.buffer, got[i]!.byteOffset, got[i]!.byteLength).equals(Buffer.from(want[i]!.buffer, want[i]!.byteOffset, want[i]!.byteLength)),
        `case ${i}`).toBe(true);
    }
  });
});

describe('WeightBinder', () => {
  const LLAMA2 = join(FIXTURES, 'llama2-tiny'); // BF16
  const GPT2 = join(FIXTURES, 'gpt2-tiny'); // F32

  /** The source, remembering the arrays it handed out. */
  function recording(src: TensorSource): { source: TensorSource; reads: Map<string, Uint8Array> } {
    const reads = new Map<string, Uint8Array>();
    return { reads, source: { list: () => src.list(), read: async (name) => { const b = await src.read(name); reads.set(name, b); return b; } } };
  }

  const shapeOf = async (src: TensorSource, name: string): Promise<TensorInfo> => (await src.list()).find((t) => t.name === name)!;

  it('holds a BF16 matrix as the checkpoint\'s own 16-bit array, and widens a norm weight to F32', async () => {
    const { source, reads } = recording(await checkpointOf(LLAMA2));
    const binder = await WeightBinder.open(source, 'llama2-tiny');
    const name = 'model.layers.0.mlp.up_proj.weight';
    const info = await shapeOf(source, name);
    const w = await binder.weights(name, info.shape);
    expect(w.dtype).toBe('BF16');
    expect(w.data).toBeInstanceOf(Uint16Array);
    expect(w.data.buffer).toBe(reads.get(name)!.buffer);
    expect(w.data.length).toBe(info.shape[0]! * info.shape[1]!);
    const norm = await binder.tensor('model.norm.weight', (await shapeOf(source, 'model.norm.weight')).shape);
    expect(norm).toBeInstanceOf(Float32Array);
    expect([...norm]).toEqual([...(await toF32(reads.get('model.norm.weight')!, 'BF16'))]);
  });

  it('uses an F32 checkpoint\'s arrays in place, and returns one array for a name asked twice (tied embeddings)', async () => {
    const { source, reads } = recording(await checkpointOf(GPT2));
    const binder = await WeightBinder.open(source, 'gpt2-tiny');
    const name = 'transformer.wte.weight';
    const { shape } = await shapeOf(source, name);
    const w = await binder.weights(name, shape);
    expect(w.dtype).toBe('F32');
    expect(w.data.buffer).toBe(reads.get(name)!.buffer);
    expect(await binder.weights(name, shape)).toBe(w);
  });

  it('transposes a Conv1D weight in its own dtype', async () => {
    const src = castSource(await checkpointOf(GPT2), 'BF16');
    const binder = await WeightBinder.open(src, 'gpt2-tiny');
    const { shape: [inDim, outDim] } = await shapeOf(src, 'transformer.h.0.mlp.c_fc.weight');
    const stored = new Uint16Array((await src.read('transformer.h.0.mlp.c_fc.weight')).slice().buffer);
    const l = await binder.conv1d('transformer.h.0.mlp.c_fc', inDim!, outDim!);
    expect(l.w.dtype).toBe('BF16');
    for (const [i, o] of [[0, 0], [1, 0], [0, 1], [inDim! - 1, outDim! - 1], [3, 7]] as const) expect(l.w.data[o * inDim! + i]).toBe(stored[i * outDim! + o]);
  });
});
