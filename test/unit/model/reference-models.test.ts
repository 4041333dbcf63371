// The engine against the tiny reference models of test/fixtures/models (one per architecture variant and
// dtype; see the README there): expected.json holds logits at every position computed by an independent
// float64 PyTorch implementation, and the ids its own tokenizer implementation gives each text.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { PROJECT_ROOT } from '../../helpers/repo.js';
import { greedy, LOGPROB_TOLERANCE, loadModelDir, nextTokenLogprobs, readJson } from './helpers.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'models');

interface Case {
  name: string;
  text?: string;
  ids: number[];
  logits: number[][];
  logit_range: number;
  mask_position?: number;
  top5_ids?: number[];
  logprob_of_next_ids?: number[];
  greedy_20?: number[];
}

const models = readdirSync(FIXTURES, { withFileTypes: true }).filter((d) => d.isDirectory() && existsSync(join(FIXTURES, d.name, 'expected.json'))).map((d) => d.name).sort();

it('covers every architecture the engine supports', () => {
  const archs = new Set(models.map((m) => readJson(join(FIXTURES, m), 'expected.json').architecture));
  for (const a of ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'GPT2LMHeadModel', 'BertForMaskedLM', 'RobertaForMaskedLM', 'DistilBertForMaskedLM']) {
    expect(archs).toContain(a);
  }
});

describe.each(models)('%s', (name) => {
  const dir = join(FIXTURES, name);
  const expected = readJson(dir, 'expected.json');
  const cases: Case[] = expected.cases;

  it(`loads as ${expected.architecture} (${expected.kind}, ${expected.dtype} weights)`, async () => {
    const model = await loadModelDir(dir);
    expect(model.architecture).toBe(expected.architecture);
    expect(model.kind).toBe(expected.kind);
    expect(model.vocabSize).toBe(expected.vocab_size);
    expect(model.tokenizer === null).toBe(readJson(dir, 'tokenizer.json') === undefined);
  });

  it.each(cases.map((c) => [c.name, c] as const))('case %s: tokens and logits at every position', async (_, c) => {
    const model = await loadModelDir(dir);
    if (c.text !== undefined) expect(model.tokenizer!.encode(c.text)).toEqual(c.ids);
    const positions = c.ids.map((_, i) => i);
    const [logits] = await model.logits([{ ids: c.ids, positions }]);
    const V = model.vocabSize;
    for (const p of positions) {
      const row = logits!.subarray(p * V, (p + 1) * V);
      const range = c.logit_range;
      let worst = 0;
      row.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - c.logits[p]![i]!)); });
      expect(worst / range, `position ${p}`).toBeLessThanOrEqual(1e-4);
    }
    if (c.top5_ids) {
      const p = c.mask_position!;
      if (model.tokenizer) expect(c.ids[p]).toBe(model.tokenizer.maskToken!.id);
      const row = Array.from(logits!.subarray(p * V, (p + 1) * V));
      const top5 = row.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 5).map(([, i]) => i);
      expect(top5).toEqual(c.top5_ids);
    }
    if (c.logprob_of_next_ids) {
      const lp = await nextTokenLogprobs(model, c.ids);
      lp.forEach((v, i) => expect(Math.abs(v - c.logprob_of_next_ids![i]!), `position ${i}`).toBeLessThanOrEqual(LOGPROB_TOLERANCE));
    }
    if (c.greedy_20) expect(await greedy(model, c.ids, c.greedy_20.length)).toEqual(c.greedy_20);
  });

  it('a batch of every case gives each the logits it gets alone', async () => {
    const model = await loadModelDir(dir);
    const batch = cases.map((c) => ({ ids: c.ids, positions: c.ids.map((_, i) => i).reverse() }));
    const together = await model.logits(batch);
    for (let i = 0; i < batch.length; i++) {
      const [alone] = await model.logits([batch[i]!]);
      for (let j = 0; j < alone!.length; j++) expect(Math.abs(together[i]![j]! - alone![j]!)).toBeLessThanOrEqual(1e-5 * cases[i]!.logit_range);
    }
  });
});
