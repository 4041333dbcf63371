// fileTensorSource (single file and sharded checkpoints) and the tokenizer wrapper's additions to
// @huggingface/tokenizers: add_bos_token from tokenizer_config.json, mask-token discovery, special ids.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { parseSafetensors, serializeSafetensors } from '../../../src/format/safetensors.js';
import { fileTensorSource, loadModel, ModelError } from '../../../src/model/index.js';
import { PROJECT_ROOT } from '../../helpers/repo.js';
import { loadModelDir, readJson } from './helpers.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'models');
const GPT2 = join(FIXTURES, 'gpt2-tiny');

const temps: string[] = [];
afterEach(() => temps.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

/** gpt2-tiny's checkpoint split into two shards with a model.safetensors.index.json, in a temp folder. */
function shardGpt2(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gt-shards-'));
  temps.push(dir);
  const bytes = readFileSync(join(GPT2, 'model.safetensors'));
  const header = parseSafetensors(bytes);
  const dataStart = 8 + header.headerLength;
  const shards: Record<string, typeof header.tensors> = { 'model-00001-of-00002.safetensors': [], 'model-00002-of-00002.safetensors': [] };
  header.tensors.forEach((t, i) => shards[i % 2 ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors']!.push(t));
  const weightMap: Record<string, string> = {};
  for (const [file, tensors] of Object.entries(shards)) {
    writeFileSync(join(dir, file), serializeSafetensors(tensors.map((t) => ({
      name: t.name, dtype: t.dtype, shape: t.shape, data: bytes.subarray(dataStart + t.begin, dataStart + t.end),
    }))));
    for (const t of tensors) weightMap[t.name] = file;
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) writeFileSync(join(dir, f), readFileSync(join(GPT2, f)));
  return dir;
}

describe('fileTensorSource', () => {
  it('a checkpoint that is not there is a ModelError naming the path', async () => {
    const err = await fileTensorSource('/nonexistent/model.safetensors').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toContain('/nonexistent/model.safetensors');
  });

  it('reads a sharded checkpoint through its index: the same logits as the single file', async () => {
    const dir = shardGpt2();
    const ids = readJson(GPT2, 'expected.json').cases[0].ids as number[];
    const positions = ids.map((_, i) => i);
    const [sharded] = await (await loadModelDir(dir)).logits([{ ids, positions }]);
    const [single] = await (await loadModelDir(GPT2)).logits([{ ids, positions }]);
    expect(sharded).toEqual(single);
  });

  it('a source handing out views into one buffer (and at odd offsets) gives the same logits', async () => {
    const bytes = readFileSync(join(GPT2, 'model.safetensors'));
    const header = parseSafetensors(bytes);
    const start = 8 + header.headerLength;
    const shifted = new Uint8Array(bytes.length + 1).fill(0); // one byte in: every F32 view is misaligned
    shifted.set(bytes, 1);
    const tensors = {
      list: async () => header.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
      read: async (name: string) => {
        const t = header.tensors.find((x) => x.name === name)!;
        return shifted.subarray(1 + start + t.begin, 1 + start + t.end);
      },
    };
    const ids = readJson(GPT2, 'expected.json').cases[0].ids as number[];
    const [views] = await (await loadModelDir(GPT2, { tensors })).logits([{ ids, positions: [ids.length - 1] }]);
    const [file] = await (await loadModelDir(GPT2)).logits([{ ids, positions: [ids.length - 1] }]);
    expect(views).toEqual(file);
  });

  it('an index naming a shard that lacks the tensor is an error naming both', async () => {
    const dir = shardGpt2();
    const indexFile = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8'));
    const other = index.weight_map['transformer.wte.weight'] === 'model-00001-of-00002.safetensors' ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors';
    index.weight_map['transformer.wte.weight'] = other;
    writeFileSync(indexFile, JSON.stringify(index));
    const err = await fileTensorSource(indexFile).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toContain(`maps tensor transformer.wte.weight to ${other}, which does not hold it`);
  });
});

describe('tokenizer', () => {
  const files = (dir: string, tokenizerConfig: unknown) => ({
    label: dir, config: readJson(dir, 'config.json'), tokenizer: readJson(dir, 'tokenizer.json'), tokenizerConfig,
  });

  it('add_bos_token: true in tokenizer_config.json prepends BOS although the post-processor adds none', async () => {
    const tensors = await fileTensorSource(join(GPT2, 'model.safetensors'));
    const config = readJson(GPT2, 'tokenizer_config.json');
    const plain = (await loadModel({ ...files(GPT2, config), tensors })).tokenizer!;
    const withBos = (await loadModel({ ...files(GPT2, { ...config, add_bos_token: true }), tensors })).tokenizer!;
    const ids = plain.encode('The cat sat on the mat.');
    expect(ids[0]).not.toBe(plain.bosId);
    expect(withBos.encode('The cat sat on the mat.')).toEqual([plain.bosId, ...ids]);
    expect(withBos.encode('The cat sat on the mat.', { addSpecialTokens: false })).toEqual(ids);
  });

  it('add_bos_token: false drops the BOS that tokenizer.json\'s post-processor adds', async () => {
    const dir = join(FIXTURES, 'llama-tiny');
    const tensors = await fileTensorSource(join(dir, 'model.safetensors'));
    const config = readJson(dir, 'tokenizer_config.json');
    const tok = (await loadModel({ ...files(dir, config), tensors })).tokenizer!;
    const noBos = (await loadModel({ ...files(dir, { ...config, add_bos_token: false }), tensors })).tokenizer!;
    const ids = tok.encode('Hello world');
    expect(ids[0]).toBe(tok.bosId);
    expect(noBos.encode('Hello world')).toEqual(ids.slice(1));
  });

  it.each([['bert-tiny', '[MASK]'], ['distilbert-tiny', '[MASK]'], ['roberta-tiny', '<mask>']])('%s finds its mask token %s', async (name, text) => {
    const model = await loadModelDir(join(FIXTURES, name));
    expect(model.tokenizer!.maskToken).toEqual({ text, id: model.tokenizer!.tokenToId(text) });
  });

  it('a causal model\'s tokenizer has no mask token; decode inverts encode', async () => {
    const tok = (await loadModelDir(GPT2)).tokenizer!;
    expect(tok.maskToken).toBeUndefined();
    const text = 'Hello world, git merges the intense blue tensors';
    expect(tok.decode(tok.encode(text))).toBe(text);
    expect(tok.idToToken(tok.tokenToId('<|endoftext|>')!)).toBe('<|endoftext|>');
  });
});
