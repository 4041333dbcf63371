// The built-in engine behind `git tensor probe`: a real trained model (babyllama, ../shared/fixtures/
// models) committed with its config and tokenizer, probed from the store. Expected values come from the
// fixture's expected.json, computed by an independent float64 implementation of the Hugging Face forward
// pass (see its README): a target's logprob is the sum of the reference's next-token logprobs over the
// target's tokens, a text's loss their negated mean, and --generate reproduces the greedy continuation.
// A masked-LM probe runs on the project's bert-tiny reference model (test/fixtures/models), checked against
// the logits at the mask in its expected.json.

import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeRepo, PROJECT_ROOT } from '../helpers/repo.js';
import { orSkipped, sharedDir } from '../helpers/shared.js';

const MODELS = sharedDir('fixtures', 'models');
const BABYLLAMA = join(MODELS.dir, 'babyllama');
const BERT_TINY = join(PROJECT_ROOT, 'test', 'fixtures', 'models', 'bert-tiny');

interface Case { text: string; ids: number[]; logprob_of_next_ids: number[]; greedy_40_text: string }

describe.skipIf(!!MODELS.skip)(orSkipped('git tensor probe with the built-in engine (babyllama)', MODELS), () => {
  it('scores targets and text, generates greedily, from the store, and caches the result in notes', () => {
    const cases = (JSON.parse(readFileSync(join(BABYLLAMA, 'expected.json'), 'utf8')) as { cases: Case[] }).cases;
    const [once, lily] = cases as [Case, Case];
    const repo = makeRepo();
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(BABYLLAMA, f), repo.path(f));
    repo.write('probes.jsonl', [
      { id: 'was', prompt: 'Once upon a time, there', targets: [' was'] },
      { id: 'story', text: lily.text },
      { id: 'go', prompt: once.text },
    ].map((p) => JSON.stringify(p)).join('\n') + '\n');
    repo.commit(['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'probes.jsonl'], 'babyllama');

    const r = repo.gitTensor(['probe', 'HEAD', '--probes', 'probes.jsonl', '--generate', '12', '--json'], { timeoutMs: 110_000 });
    const [was, story, go] = JSON.parse(r.stdout).versions[0].probes;
    // " was" is the last 4 of the case's 28 predicted tokens (one character each, ▁ for the space).
    const ref = once.logprob_of_next_ids.slice(-4).reduce((a, b) => a + b, 0);
    expect(was.targets[0].tokens).toBe(4);
    expect(Math.abs(was.targets[0].logprob - ref)).toBeLessThan(1e-3);
    const loss = -lily.logprob_of_next_ids.reduce((a, b) => a + b, 0) / lily.logprob_of_next_ids.length;
    expect(story.tokens).toBe(lily.logprob_of_next_ids.length);
    expect(Math.abs(story.loss - loss)).toBeLessThan(1e-4);
    expect(go.generated).toBe(once.greedy_40_text.slice(0, 12));

    const again = JSON.parse(repo.gitTensor(['probe', 'HEAD', '--probes', 'probes.jsonl', '--generate', '12', '--json']).stdout);
    expect(again.versions[0].cached).toBe(true);
  });
});

describe('git tensor probe on a masked LM (bert-tiny)', () => {
  it('scores a [MASK] probe and refuses a multi-token target by name', async () => {
    const repo = makeRepo();
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(BERT_TINY, f), repo.path(f));
    // The reference's `mask` case: logits at the mask position from the independent float64 implementation.
    const ref = (JSON.parse(readFileSync(join(BERT_TINY, 'expected.json'), 'utf8')).cases as { name: string; text: string; mask_position: number; top5_ids: number[]; logits: number[][] }[]).find((c) => c.name === 'mask')!;
    const vocab = (JSON.parse(readFileSync(join(BERT_TINY, 'tokenizer.json'), 'utf8')).model.vocab) as Record<string, number>;
    const row = ref.logits[ref.mask_position]!;
    const lse = Math.log(row.reduce((a, x) => a + Math.exp(x), 0));
    repo.write('probes.jsonl', JSON.stringify({ id: 'capital', prompt: ref.text, targets: ['paris', 'london'] }) + '\n');
    repo.commit(['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'probes.jsonl'], 'bert');
    const p = JSON.parse(repo.gitTensor(['probe', '--probes', 'probes.jsonl', '--json']).stdout).versions[0].probes[0];
    expect(p.kind).toBe('masked');
    for (const [i, word] of ['paris', 'london'].entries()) {
      const x = row[vocab[word]!]!;
      expect(p.targets[i].tokens).toBe(1);
      expect(Math.abs(p.targets[i].logprob - (x - lse))).toBeLessThan(1e-3);
      expect(p.targets[i].rank).toBe(1 + row.filter((y) => y > x).length);
    }
    const byId = Object.fromEntries(Object.entries(vocab).map(([t, id]) => [id, t]));
    expect(p.top5.map((t: { token: string }) => t.token.trim())).toEqual(ref.top5_ids.map((id) => byId[id]));
    repo.write('probes.jsonl', JSON.stringify({ id: 'solid', prompt: 'The king [MASK] to London.', targets: ['walked'] }) + '\n');
    const bad = repo.gitTensor(['probe', '--probes', 'probes.jsonl'], { allowFail: true });
    expect(bad.status).toBe(3);
    expect(bad.stderr).toMatch(/probe "solid".*target "walked" is 2 tokens; a masked LM fills one token per \[MASK\]/);
  });
});

// Causal reference models (random weights, float64 reference): the case "The cat sat on the mat." gives
// each token's reference logprob, so a target, a statement and a text are checked without the engine's
// own numbers. Covers tokenizers with and without BOS (GPT-2/Qwen2: none; Llama 3/2: <|begin_of_text|>/<s>).
// Committed fixtures (test/fixtures/models): a missing one fails the test rather than shrinking this list.
const CAUSAL = ['gpt2-tiny', 'qwen2-tiny', 'llama-tiny', 'llama2-tiny'];

describe('git tensor probe on the causal reference models', () => {
  it.each(CAUSAL)('%s: target logprob and rank, statement and text scores match the reference', (name) => {
    const dir = join(PROJECT_ROOT, 'test', 'fixtures', 'models', name);
    const ref = (JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')).cases as { text?: string; ids: number[]; tokens: string[]; logprob_of_next_ids: number[]; logits: number[][] }[])
      .find((c) => c.text === 'The cat sat on the mat.')!;
    const repo = makeRepo();
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(dir, f), repo.path(f));
    repo.write('probes.jsonl', [
      { id: 'mat', prompt: 'The cat sat on the', targets: [' mat'] },
      { id: 'pick', choices: [ref.text, 'The mat sat on the cat.'] },
      { id: 'story', text: ref.text },
    ].map((p) => JSON.stringify(p)).join('\n') + '\n');
    repo.commit(['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'probes.jsonl'], name);
    const [mat, pick, story] = JSON.parse(repo.gitTensor(['probe', '--probes', 'probes.jsonl', '--json']).stdout).versions[0].probes;
    const at = ref.tokens.findIndex((t) => t.endsWith('mat')); // ids[at] is " mat", predicted at position at - 1
    const range = Math.max(...ref.logits[at - 1]!) - Math.min(...ref.logits[at - 1]!);
    expect(mat.targets[0].tokens).toBe(1);
    expect(Math.abs(mat.targets[0].logprob - ref.logprob_of_next_ids[at - 1]!)).toBeLessThan(1e-4 * range + 1e-5);
    const row = ref.logits[at - 1]!, target = row[ref.ids[at]!]!;
    expect(mat.targets[0].rank).toBe(1 + row.filter((y) => y > target).length);
    const sum = ref.logprob_of_next_ids.reduce((a, b) => a + b, 0);
    expect(Math.abs(pick.choices[0].logprob - sum)).toBeLessThan(1e-3);
    expect(story.tokens).toBe(ref.logprob_of_next_ids.length);
    expect(Math.abs(story.loss + sum / ref.logprob_of_next_ids.length)).toBeLessThan(1e-4);
  });
});
