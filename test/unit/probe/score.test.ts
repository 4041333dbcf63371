// Scoring arithmetic on a hand-checkable model: a test double of the engine (not of git) whose next-token
// distribution depends only on the previous token, with probabilities chosen so every expected value
// below is worked out by hand from the table, not taken from the scorer's output.

import { describe, expect, it } from 'vitest';
import type { LanguageModel, Tokenizer } from '../../../src/model/types.js';
import { parseProbes } from '../../../src/probe/probes.js';
import { scoreProbes } from '../../../src/probe/score.js';

// Vocabulary: 0 <s>, 1 a, 2 b, 3 c, 4 [MASK]. P(next | previous token):
const P: Record<number, number[]> = {
  0: [0, 0.25, 0.5, 0.25, 0],
  1: [0, 0.1, 0.2, 0.7, 0],
  2: [0, 0.6, 0.3, 0.1, 0],
  3: [0, 1 / 3, 1 / 3, 1 / 3, 0],
  4: [0, 1 / 3, 1 / 3, 1 / 3, 0],
};
const TINY = 1e-30;
const SYMBOLS = ['<s>', 'a', 'b', 'c', '[MASK]'];

function tokenizer(masked: boolean): Tokenizer {
  return {
    encode(text, opts) {
      const ids: number[] = opts?.addSpecialTokens === false ? [] : [0];
      for (let i = 0; i < text.length; i++) {
        if (masked && text.startsWith('[MASK]', i)) { ids.push(4); i += 5; continue; }
        const id = SYMBOLS.indexOf(text[i]!);
        if (id < 1 || id > 3) throw new Error(`fake tokenizer: ${text[i]}`);
        ids.push(id);
      }
      return ids;
    },
    decode: (ids) => ids.map((i) => SYMBOLS[i]).join(''),
    tokenToId: (t) => (SYMBOLS.includes(t) ? SYMBOLS.indexOf(t) : undefined),
    idToToken: (id) => SYMBOLS[id],
    maskToken: masked ? { text: '[MASK]', id: 4 } : undefined,
    bosId: 0,
  };
}

/** Logits = ln P(. | the token before the position) (causal: the token at it). */
function fakeModel(kind: 'causal' | 'masked'): LanguageModel & { calls: number } {
  const m = {
    architecture: kind === 'causal' ? 'FakeForCausalLM' : 'FakeForMaskedLM', kind, vocabSize: 5, maxPositions: 64,
    tokenizer: tokenizer(kind === 'masked'), calls: 0,
    async logits(batch: { ids: number[]; positions: number[] }[]) {
      m.calls++;
      return batch.map(({ ids, positions }) => {
        const out = new Float32Array(positions.length * 5);
        positions.forEach((p, r) => {
          const prev = kind === 'causal' ? ids[p]! : ids[p - 1]!;
          P[prev]!.forEach((q, t) => (out[r * 5 + t] = Math.log(q || TINY)));
        });
        return out;
      });
    },
    dispose() {},
  };
  return m;
}

const probes = (...objs: unknown[]) => parseProbes(objs.map((o) => JSON.stringify(o)).join('\n'), 'p.jsonl');

describe('scoreProbes on a causal model', () => {
  it('sums target tokens, ranks single tokens, picks the best target, and batches everything in one call', async () => {
    const m = fakeModel('causal');
    const r = await scoreProbes(m, probes(
      { id: 'two', prompt: 'a', targets: ['bc', 'c'] },
      { id: 'one', prompt: 'a', targets: ['c'] },
      { id: 'pick', choices: ['ab', 'ba'] },
      { id: 'txt', text: 'abc' },
    ), { label: 'v' });
    expect(m.calls).toBe(1);
    const [two, one, pick, txt] = r.probes as any[];
    expect(two.targets[0].logprob).toBeCloseTo(Math.log(0.2) + Math.log(0.1), 5);
    expect(two.targets[0].rank).toBeUndefined();
    expect(two.targets[0].greedy).toBe(false);
    expect(two.targets[1]).toMatchObject({ text: 'c', tokens: 1, rank: 1, greedy: true });
    expect(two.targets[1].prob).toBeCloseTo(0.7, 5);
    expect(two).toMatchObject({ kind: 'causal', answer: 'c', correct: false });
    expect(two.top5.map((t: any) => t.token).slice(0, 3)).toEqual(['c', 'b', 'a']);
    expect(two.top5[1].logprob).toBeCloseTo(Math.log(0.2), 5);
    expect(one).toMatchObject({ answer: 'c', correct: true });
    const miss = (await scoreProbes(fakeModel('causal'), probes({ id: 'miss', prompt: 'b', targets: ['c'] }), { label: 'v' })).probes[0];
    expect(miss).toMatchObject({ answer: 'a', correct: false }); // after b the model says a (0.6), not c
    // "ab": P(a|<s>) P(b|a) = 0.25 * 0.2; "ba": 0.5 * 0.6 = 0.3: the second wins by ln 6.
    expect(pick.chosen).toBe(1);
    expect(pick.correct).toBe(false);
    expect(pick.margin).toBeCloseTo(Math.log(6), 5);
    expect(pick.choices[0].logprob).toBeCloseTo(Math.log(0.05), 5);
    expect(txt.tokens).toBe(3);
    expect(txt.loss).toBeCloseTo(-(Math.log(0.25) + Math.log(0.2) + Math.log(0.1)) / 3, 5);
    expect(txt.dist).toHaveLength(3);
    expect(txt.dist[0][0][0]).toBe('b');
  });

  it('--generate continues greedily, one batch per step', async () => {
    const m = fakeModel('causal');
    const r = await scoreProbes(m, probes({ id: 'g', prompt: 'b' }, { id: 'h', prompt: 'a' }), { label: 'v', generate: 2 });
    expect((r.probes[0] as any).generated).toBe('ac'); // b -> a (0.6) -> c (0.7)
    expect((r.probes[1] as any).generated).toBe('ca'); // a -> c (0.7) -> a (ties at 1/3: lowest id)
    expect(m.calls).toBe(3);
  });

  it('refuses a mask-token prompt on a causal model, naming the probe', async () => {
    await expect(scoreProbes(fakeModel('causal'), probes({ id: 'm', prompt: 'a[MASK]', targets: ['b'] }), { label: 'HEAD' }))
      .rejects.toThrow(/HEAD: probe "m" \(line 1\): the prompt has a mask token/);
  });
});

describe('scoreProbes on a masked model', () => {
  it('scores the mask position: log P, rank; choices by pseudo-log-likelihood', async () => {
    const m = fakeModel('masked');
    const r = await scoreProbes(m, probes(
      { id: 'fill', prompt: 'a[MASK]', targets: ['b', 'c'] },
      { id: 'pick', choices: ['ab', 'ba'] },
    ), { label: 'v' });
    const [fill, pick] = r.probes as any[];
    expect(fill.targets[0]).toMatchObject({ tokens: 1, rank: 2, greedy: false });
    expect(fill.targets[0].logprob).toBeCloseTo(Math.log(0.2), 5);
    expect(fill.targets[1].rank).toBe(1);
    expect(fill).toMatchObject({ kind: 'masked', answer: 'c', correct: false });
    expect(pick.choices[0].logprob).toBeCloseTo(Math.log(0.25) + Math.log(0.2), 5);
    expect(pick.chosen).toBe(1);
    expect(m.calls).toBe(1);
  });

  it('refuses --generate, which a masked LM cannot do', async () => {
    await expect(scoreProbes(fakeModel('masked'), probes({ id: 'g', prompt: 'a[MASK]' }), { label: 'v', generate: 3 })).rejects.toThrow(/--generate continues text, and FakeForMaskedLM is a masked LM/);
  });

  it('refuses a multi-token target and a prompt without exactly one mask', async () => {
    await expect(scoreProbes(fakeModel('masked'), probes({ id: 'x', prompt: 'a[MASK]', targets: ['bc'] }), { label: 'v' }))
      .rejects.toThrow(/target "bc" is 2 tokens; a masked LM fills one token per \[MASK\]/);
    await expect(scoreProbes(fakeModel('masked'), probes({ id: 'y', prompt: 'ab', targets: ['b'] }), { label: 'v' }))
      .rejects.toThrow(/needs exactly one \[MASK\], found 0/);
  });
});
