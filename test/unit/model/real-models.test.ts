// The engine against two small real trained models in ../shared/fixtures/models, whose expected.json was
// computed in float64 by an independent implementation of the Hugging Face forward pass (see the README
// there): logits at the last position, log P of each next token, the greedy continuation.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { orSkipped, sharedDir } from '../../helpers/shared.js';
import { expectLogitsClose, greedy, LOGPROB_TOLERANCE, loadModelDir, nextTokenLogprobs, readJson } from './helpers.js';

const MODELS = sharedDir('fixtures', 'models');
const BABYLLAMA = join(MODELS.dir, 'babyllama');
const CAPP_GPT2 = join(MODELS.dir, 'capp-gpt2');

interface Case {
  text?: string;
  ids: number[];
  last_logits: number[];
  logprob_of_next_ids: number[];
  greedy_40_ids?: number[];
  greedy_40_text?: string;
  greedy_6_ids?: number[];
}

describe.skipIf(!!MODELS.skip)(orSkipped('babyllama (LlamaForCausalLM, GQA, tied embeddings)', MODELS), () => {
  const cases: Case[] = !MODELS.skip ? readJson(BABYLLAMA, 'expected.json').cases : [];

  it('tokenizes each case\'s text to its ids, BOS first, and decodes the continuation to its text', async () => {
    const model = await loadModelDir(BABYLLAMA);
    expect(model.architecture).toBe('LlamaForCausalLM');
    expect(model.kind).toBe('causal');
    const tok = model.tokenizer!;
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    for (const c of cases) {
      expect(tok.encode(c.text!)).toEqual(c.ids);
      expect(tok.encode(c.text!, { addSpecialTokens: false })).toEqual(c.ids.slice(1));
      expect(tok.decode([...c.ids.slice(1), ...c.greedy_40_ids!])).toBe(c.text! + c.greedy_40_text!);
    }
  });

  it.each(cases.map((c, i) => [i, c] as const))('case %i: last logits, next-token log-probabilities, greedy continuation', async (_, c) => {
    const model = await loadModelDir(BABYLLAMA);
    const [last] = await model.logits([{ ids: c.ids, positions: [c.ids.length - 1] }]);
    expectLogitsClose(last!, c.last_logits);
    const lp = await nextTokenLogprobs(model, c.ids);
    lp.forEach((v, i) => expect(Math.abs(v - c.logprob_of_next_ids[i]!), `position ${i}`).toBeLessThanOrEqual(LOGPROB_TOLERANCE));
    expect(await greedy(model, c.ids, c.greedy_40_ids!.length)).toEqual(c.greedy_40_ids);
  });

  it('a batch of three sequences gives each the logits it gets alone, at every requested position', async () => {
    const model = await loadModelDir(BABYLLAMA);
    const batch = cases.map((c, i) => ({ ids: c.ids, positions: i === 1 ? [0, 5, c.ids.length - 1] : [c.ids.length - 1, 2] }));
    const together = await model.logits(batch);
    for (let i = 0; i < batch.length; i++) {
      const [alone] = await model.logits([batch[i]!]);
      expect(together[i]!.length).toBe(batch[i]!.positions.length * model.vocabSize);
      for (let j = 0; j < alone!.length; j++) expect(Math.abs(together[i]![j]! - alone![j]!)).toBeLessThanOrEqual(1e-5);
    }
  });
});

describe.skipIf(!!MODELS.skip)(orSkipped('capp-gpt2 (GPT2LMHeadModel, lm_head tied and not stored, no tokenizer)', MODELS), () => {
  const cases: Case[] = !MODELS.skip ? readJson(CAPP_GPT2, 'expected.json').cases : [];

  it('has no tokenizer: probes give token ids', async () => {
    const model = await loadModelDir(CAPP_GPT2);
    expect(model.architecture).toBe('GPT2LMHeadModel');
    expect(model.tokenizer).toBeNull();
    expect(model.vocabSize).toBe(53);
    expect(model.maxPositions).toBe(512);
  });

  it.each(cases.map((c, i) => [i, c] as const))('case %i: last logits, next-token log-probabilities, greedy continuation', async (_, c) => {
    const model = await loadModelDir(CAPP_GPT2);
    const [last] = await model.logits([{ ids: c.ids, positions: [c.ids.length - 1] }]);
    expectLogitsClose(last!, c.last_logits);
    const lp = await nextTokenLogprobs(model, c.ids);
    lp.forEach((v, i) => expect(Math.abs(v - c.logprob_of_next_ids[i]!), `position ${i}`).toBeLessThanOrEqual(LOGPROB_TOLERANCE));
    expect(await greedy(model, c.ids, c.greedy_6_ids!.length)).toEqual(c.greedy_6_ids);
  });
});
