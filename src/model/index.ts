// The inference engine: loads one model version (config.json, tokenizer files, a TensorSource) into a
// LanguageModel that scores token sequences. Architectures are one file each (llama.ts, gpt2.ts, ...);
// this module picks one from config.json's `architectures`, binds its weights and wraps its forward pass
// with batch checking. See docs/model.md.
//
// Usage:
//   const model = await loadModel({ label: 'HEAD:model.safetensors', config, tokenizer, tokenizerConfig,
//                                   tensors: await fileTensorSource('model.safetensors') });
//   const [logits] = await model.logits([{ ids: model.tokenizer!.encode('Once upon'), positions: [2] }]);

import { ENCODER_ARCHITECTURES, loadEncoder } from './bert.js';
import { ConfigReader } from './config.js';
import { EXTERNAL_RUNNER_HINT, ModelError } from './errors.js';
import { loadGpt2 } from './gpt2.js';
import { LLAMA_ARCHITECTURES, loadLlama } from './llama.js';
import { packBatch, splitLogits, type Network } from './network.js';
import { loadTokenizer } from './tokenizer.js';
import type { LanguageModel, ModelFiles } from './types.js';
import { WeightBinder } from './weights.js';

export type { LanguageModel, ModelFiles, TensorInfo, TensorSource, Tokenizer } from './types.js';
export { ModelError, type ModelErrorCode } from './errors.js';
export { fileTensorSource } from './source.js';
export { ENGINE_VERSION } from './version.js';

type Loader = (c: ConfigReader, w: WeightBinder) => Promise<Network>;

const LOADERS: Record<string, Loader> = {
  ...Object.fromEntries(LLAMA_ARCHITECTURES.map((a) => [a, loadLlama])),
  GPT2LMHeadModel: loadGpt2,
  ...Object.fromEntries(ENCODER_ARCHITECTURES.map((a) => [a, loadEncoder])),
};

/** The config.json `architectures` the engine runs. */
export const SUPPORTED_ARCHITECTURES: readonly string[] = Object.keys(LOADERS);

export async function loadModel(files: ModelFiles): Promise<LanguageModel> {
  const { label } = files;
  const archs = (files.config as { architectures?: unknown } | null)?.architectures;
  const architecture = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : undefined;
  if (architecture === undefined) {
    throw new ModelError('E_MODEL_CONFIG', label, 'config.json has no architectures list naming the model class',
      { hint: `Add e.g. "architectures": ["LlamaForCausalLM"]. ${EXTERNAL_RUNNER_HINT}` });
  }
  const load = LOADERS[architecture];
  if (!load) {
    throw new ModelError('E_MODEL_UNSUPPORTED', label,
      `architecture ${architecture} is not supported by the built-in inference engine (supported: ${SUPPORTED_ARCHITECTURES.join(', ')})`,
      { data: { architecture }, hint: EXTERNAL_RUNNER_HINT });
  }
  const config = new ConfigReader(files.config, label, architecture);
  const quantization = config.value('quantization_config');
  if (quantization !== undefined) throw config.unsupported('quantization_config', quantization, 'the engine runs F32, F16 and BF16 weights, not quantized ones');
  let net: Network | null = await load(config, await WeightBinder.open(files.tensors, label));
  const tokenizer = files.tokenizer === undefined ? null : loadTokenizer(files.tokenizer, files.tokenizerConfig, label);

  return {
    architecture,
    kind: net.kind,
    vocabSize: net.vocabSize,
    maxPositions: net.maxPositions,
    tokenizer,
    async logits(batch) {
      if (!net) throw new Error(`${label}: the model was disposed`);
      if (batch.length === 0) return [];
      const logits = await net.forward(packBatch(batch, net, label));
      return splitLogits(logits, batch, net.vocabSize);
    },
    dispose() {
      net = null;
    },
  };
}
