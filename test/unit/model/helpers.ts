// Loading a model folder in Hugging Face layout (config.json, model.safetensors or its shard index,
// tokenizer files) for the engine's tests, and comparing logits with a reference's expected.json.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

import { fileTensorSource, loadModel, type LanguageModel, type TensorSource } from '../../../src/model/index.js';


/** Logits agree with a float64 reference within this fraction of the reference's logit range. */
export const LOGIT_TOLERANCE = 1e-4;
/** log-probabilities agree within this (absolute, in nats). */
export const LOGPROB_TOLERANCE = 1e-4;

export function readJson(dir: string, file: string): any {
  const p = join(dir, file);
  return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : undefined;
}

export async function loadModelDir(dir: string, opts: { tensors?: TensorSource; config?: unknown } = {}): Promise<LanguageModel> {
  const checkpoint = existsSync(join(dir, 'model.safetensors.index.json')) ? 'model.safetensors.index.json' : 'model.safetensors';
  return loadModel({
    label: dir,
    config: opts.config ?? readJson(dir, 'config.json'),
    tokenizer: readJson(dir, 'tokenizer.json'),
    tokenizerConfig: readJson(dir, 'tokenizer_config.json'),
    tensors: opts.tensors ?? (await fileTensorSource(join(dir, checkpoint))),
  });
}

export function expectLogitsClose(actual: Float32Array, expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  const range = Math.max(...expected) - Math.min(...expected);
  let worst = 0, at = -1;
  expected.forEach((e, i) => {
    const d = Math.abs(actual[i]! - e);
    if (d > worst) [worst, at] = [d, i];
  });
  expect(worst / range, `logit ${at}: ${actual[at]} vs reference ${expected[at]}`).toBeLessThanOrEqual(LOGIT_TOLERANCE);
}

export function logSoftmax(row: Float32Array): Float64Array {
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
  return Float64Array.from(row, (v) => v - lse);
}

/** log P(ids[i+1] | ids[..i]) for each i, from one forward pass over all positions. */
export async function nextTokenLogprobs(model: LanguageModel, ids: number[]): Promise<number[]> {
  const positions = ids.slice(0, -1).map((_, i) => i);
  const [logits] = await model.logits([{ ids, positions }]);
  const V = model.vocabSize;
  return positions.map((p) => logSoftmax(logits!.subarray(p * V, (p + 1) * V))[ids[p + 1]!]!);
}

/** The argmax continuation of `ids`, one full forward pass per new token. */
export async function greedy(model: LanguageModel, ids: number[], steps: number): Promise<number[]> {
  const seq = [...ids];
  for (let s = 0; s < steps; s++) {
    const [logits] = await model.logits([{ ids: seq, positions: [seq.length - 1] }]);
    let best = 0;
    for (let i = 1; i < logits!.length; i++) if (logits![i]! > logits![best]!) best = i;
    seq.push(best);
  }
  return seq.slice(ids.length);
}
