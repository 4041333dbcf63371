// What a user sees when the engine cannot run a model version or an input: a ModelError (exit 3) naming
// the version, and the architecture, config field, tensor or token at fault.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { ExitCode } from '../../../src/errors/index.js';
import { fileTensorSource, ModelError, type TensorSource } from '../../../src/model/index.js';
import { PROJECT_ROOT } from '../../helpers/repo.js';
import { loadModelDir, readJson } from './helpers.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'models');
const GPT2 = join(FIXTURES, 'gpt2-tiny');
const QWEN2 = join(FIXTURES, 'qwen2-tiny');

/** The tensors of `dir`'s checkpoint, with `hide` left out and `retype` listed under another dtype. */
async function edited(dir: string, edit: { hide?: string; retype?: [string, string] }): Promise<TensorSource> {
  const inner = await fileTensorSource(join(dir, 'model.safetensors'));
  return {
    list: async () => (await inner.list())
      .filter((t) => t.name !== edit.hide)
      .map((t) => (edit.retype && t.name === edit.retype[0] ? { ...t, dtype: edit.retype[1] } : t)),
    read: (name) => inner.read(name),
  };
}

async function loadError(p: Promise<unknown>): Promise<ModelError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ModelError);
  expect((err as ModelError).exitCode).toBe(ExitCode.badInput);
  return err as ModelError;
}

describe('loading', () => {
  it('an unknown architecture names the supported ones and the external runner', async () => {
    const config = { ...readJson(GPT2, 'config.json'), architectures: ['T5ForConditionalGeneration'] };
    const err = await loadError(loadModelDir(GPT2, { config }));
    expect(err.code).toBe('E_MODEL_UNSUPPORTED');
    expect(err.message).toContain(GPT2);
    expect(err.message).toContain('T5ForConditionalGeneration');
    for (const a of ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'GPT2LMHeadModel', 'BertForMaskedLM', 'RobertaForMaskedLM', 'DistilBertForMaskedLM']) {
      expect(err.message).toContain(a);
    }
    expect(err.hint).toContain('[probe] command');
  });

  it('a config without architectures is E_MODEL_CONFIG', async () => {
    const { architectures: _, ...config } = readJson(GPT2, 'config.json');
    expect((await loadError(loadModelDir(GPT2, { config }))).code).toBe('E_MODEL_CONFIG');
  });

  it('a missing tensor is named', async () => {
    const err = await loadError(loadModelDir(GPT2, { tensors: await edited(GPT2, { hide: 'transformer.h.1.mlp.c_fc.weight' }) }));
    expect(err.code).toBe('E_MODEL_TENSOR');
    expect(err.message).toContain('transformer.h.1.mlp.c_fc.weight');
    expect(err.data.tensor).toBe('transformer.h.1.mlp.c_fc.weight');
  });

  it('an untied model without lm_head.weight is an error naming it, not a silently tied head', async () => {
    expect(readJson(QWEN2, 'config.json').tie_word_embeddings).toBe(false);
    const err = await loadError(loadModelDir(QWEN2, { tensors: await edited(QWEN2, { hide: 'lm_head.weight' }) }));
    expect(err.message).toContain('lm_head.weight');
  });

  it('a tensor whose shape disagrees with the config names both shapes', async () => {
    const config = { ...readJson(GPT2, 'config.json') };
    config.n_inner = (config.n_inner ?? 4 * config.n_embd) + 1;
    const err = await loadError(loadModelDir(GPT2, { config }));
    expect(err.code).toBe('E_MODEL_TENSOR');
    expect(err.message).toMatch(/transformer\.h\.0\.mlp\.c_fc\.weight has shape \[\d+, \d+\], the config implies/);
  });

  it('a weight in an integer dtype is unsupported', async () => {
    const err = await loadError(loadModelDir(GPT2, { tensors: await edited(GPT2, { retype: ['transformer.wpe.weight', 'I32'] }) }));
    expect(err.code).toBe('E_MODEL_UNSUPPORTED');
    expect(err.message).toContain('transformer.wpe.weight is I32');
  });

  it.each([
    ['rope_scaling', { type: 'yarn', factor: 4 }],
    ['hidden_act', 'quick_gelu'],
    ['use_sliding_window', true],
  ])('config %s = %j is refused, naming the field', async (field, value) => {
    const config = { ...readJson(QWEN2, 'config.json'), [field]: value };
    const err = await loadError(loadModelDir(QWEN2, { config }));
    expect(err.code).toBe('E_MODEL_UNSUPPORTED');
    expect(err.message).toContain(field);
  });

  it('a quantized checkpoint is refused by its quantization_config', async () => {
    const config = { ...readJson(QWEN2, 'config.json'), quantization_config: { quant_method: 'gptq', bits: 4 } };
    const err = await loadError(loadModelDir(QWEN2, { config }));
    expect(err.code).toBe('E_MODEL_UNSUPPORTED');
    expect(err.message).toContain('quantization_config');
  });

  it('a config field of the wrong type is E_MODEL_CONFIG naming it', async () => {
    const config = { ...readJson(GPT2, 'config.json'), n_layer: '2' };
    const err = await loadError(loadModelDir(GPT2, { config }));
    expect(err.code).toBe('E_MODEL_CONFIG');
    expect(err.message).toContain('n_layer');
  });
});

describe('inputs', () => {
  it.each([
    ['a token id outside the vocabulary', [{ ids: [1, 100000], positions: [1] }], /token id 100000 at position 1/],
    ['an empty sequence', [{ ids: [1], positions: [0] }, { ids: [], positions: [] }], /sequence 1 of the batch is empty/],
    ['a position past the sequence', [{ ids: [1, 2], positions: [2] }], /position 2, outside its 2 tokens/],
  ])('%s is E_MODEL_INPUT', async (_, batch, message) => {
    const model = await loadModelDir(GPT2);
    const err = await loadError(model.logits(batch));
    expect(err.code).toBe('E_MODEL_INPUT');
    expect(err.message).toMatch(message);
  });

  it('a sequence longer than the position table is refused before any work', async () => {
    const model = await loadModelDir(GPT2);
    const err = await loadError(model.logits([{ ids: new Array(model.maxPositions + 1).fill(1), positions: [0] }]));
    expect(err.message).toContain(`at most ${model.maxPositions}`);
  });
});
