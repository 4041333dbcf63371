// The built-in engine behind `git tensor probe`: a real trained model (babyllama, ../shared/fixtures/
// models) committed with its config and tokenizer, probed from the store. Expected values come from the
// fixture's expected.json, computed by an independent float64 implementation of the Hugging Face forward
// pass (see its README): a target's logprob is the sum of the reference's next-token logprobs over the
// target's tokens, a text's loss their negated mean, and --generate reproduces the greedy continuation.
// A masked-LM probe runs on the project's bert-tiny reference model once the engine supports BERT.

import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeRepo, PROJECT_ROOT, SHARED_DIR } from '../helpers/repo.js';

const BABYLLAMA = join(SHARED_DIR, 'fixtures', 'models', 'babyllama');
const BERT_TINY = join(PROJECT_ROOT, 'test', 'fixtures', 'models', 'bert-tiny');

interface Case { text: string; ids: number[]; logprob_of_next_ids: number[]; greedy_40_text: string }

describe.skipIf(!existsSync(BABYLLAMA))('git tensor probe with the built-in engine (babyllama)', () => {
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

describe.skipIf(!existsSync(join(BERT_TINY, 'model.safetensors')))('git tensor probe on a masked LM (bert-tiny)', () => {
  it('scores a [MASK] probe and refuses a multi-token target by name', async () => {
    const { SUPPORTED_ARCHITECTURES } = await import('../../src/model/index.js');
    if (!SUPPORTED_ARCHITECTURES.includes('BertForMaskedLM')) return; // the engine does not run BERT yet
    const repo = makeRepo();
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(BERT_TINY, f), repo.path(f));
    repo.write('probes.jsonl', JSON.stringify({ id: 'capital', prompt: 'Paris is the [MASK] of France.', targets: ['capital', 'city'] }) + '\n');
    repo.commit(['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'probes.jsonl'], 'bert');
    const out = JSON.parse(repo.gitTensor(['probe', '--probes', 'probes.jsonl', '--json']).stdout);
    const t = out.versions[0].probes[0].targets[0];
    const p = out.versions[0].probes[0];
    expect(p.kind).toBe('masked');
    expect(t.tokens).toBe(1);
    expect(t.rank).toBeGreaterThanOrEqual(1);
    expect(t.prob).toBeCloseTo(Math.exp(t.logprob), 6);
    // The top-5 are the mask's most likely tokens: the target's rank agrees with them.
    if (t.rank <= 5) expect(p.top5[t.rank - 1].token.trim()).toBe('capital');
    else expect(p.top5[4].logprob).toBeGreaterThanOrEqual(t.logprob);
    repo.write('probes.jsonl', JSON.stringify({ id: 'solid', prompt: 'The king [MASK] to London.', targets: ['walked'] }) + '\n');
    const bad = repo.gitTensor(['probe', '--probes', 'probes.jsonl'], { allowFail: true });
    expect(bad.status).toBe(3);
    expect(bad.stderr).toMatch(/probe "solid".*target "walked" is 2 tokens; a masked LM fills one token per \[MASK\]/);
  });
});
