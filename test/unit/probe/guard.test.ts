// The merge guard's judgement: which probes count, the value compared per kind, drops against the
// allowance (default and per probe), and the search for the fewest modules whose revert restores the
// probes (QuickXplain), checked against brute force on random monotone predicates.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkProtected, DEFAULT_MAX_DROP, minimalSubset, moduleOf, othersMean, protectedSubset } from '../../../src/probe/guard.js';
import { parseProbes } from '../../../src/probe/probes.js';
import type { VersionResults } from '../../../src/probe/result.js';

const set = parseProbes([
  { id: 'fact', prompt: 'A cube has [MASK] faces.', targets: ['six'], protect: true },
  { id: 'strict', prompt: 'The sun is a [MASK].', targets: ['star'], protect: true, max_drop: 0.1 },
  { id: 'stmt', choices: ['whales are mammals', 'whales are fish'], protect: true, max_drop: 0.5 },
  { id: 'prose', text: 'Once upon a time.', protect: true, max_drop: 0.2 },
  { id: 'news', prompt: 'Zorblat is a [MASK].', targets: ['city'] },
].map((p) => JSON.stringify(p)).join('\n'), 'probes.jsonl');

function results(v: { fact: number; strict: number; stmt: [number, number]; loss: number; news: number }): VersionResults {
  const prompt = (id: string, lp: number) => ({ id, kind: 'masked' as const, targets: [{ text: 'x', tokens: 1, logprob: lp, prob: Math.exp(lp), rank: 1 }], answer: 'x', correct: true, top5: [] });
  return {
    schema: 1,
    probes: [
      prompt('fact', v.fact), prompt('strict', v.strict),
      { id: 'stmt', kind: 'choices', choices: [{ text: 'a', logprob: v.stmt[0] }, { text: 'b', logprob: v.stmt[1] }], chosen: 0, margin: v.stmt[0] - v.stmt[1], correct: true },
      { id: 'prose', kind: 'text', tokens: 4, loss: v.loss },
      prompt('news', v.news),
    ],
  };
}

describe('checkProtected', () => {
  const before = results({ fact: -0.1, strict: -0.2, stmt: [-3, -9], loss: 2, news: -8 });

  it('compares each protected probe\'s value with its allowance, the default for probes without max_drop', () => {
    expect(DEFAULT_MAX_DROP).toBe(1);
    const held = checkProtected(set.probes, before, results({ fact: -1.05, strict: -0.29, stmt: [-3.2, -8.9], loss: 2.19, news: -20 }));
    expect(held.regressed).toEqual([]);
    expect(held.rows.map((r) => r.id)).toEqual(['fact', 'strict', 'stmt', 'prose']);
    expect(held.worstDrop).toBeCloseTo(0.95, 12);

    const bad = checkProtected(set.probes, before, results({ fact: -1.2, strict: -0.31, stmt: [-3, -3.4], loss: 2.21, news: 0 }));
    expect(bad.regressed.map((r) => [r.id, +r.drop.toFixed(6), r.allowed])).toEqual([['fact', 1.1, 1], ['strict', 0.11, 0.1], ['stmt', 5.6, 0.5], ['prose', 0.21, 0.2]]);
  });

  it('the unprotected probes are what auto ranks by; a file without protected probes has no guard', () => {
    expect(othersMean(set.probes, before)).toBe(-8);
    expect(protectedSubset(set)!.probes.map((p) => p.id)).toEqual(['fact', 'strict', 'stmt', 'prose']);
    expect(protectedSubset(set)!.hash).not.toBe(set.hash);
    expect(protectedSubset(parseProbes('{"id": "a", "text": "x"}\n', 'p'))).toBeNull();
  });
});

describe('moduleOf', () => {
  it('drops the parameter name', () => {
    expect(moduleOf('bert.encoder.layer.1.intermediate.dense.weight')).toBe('bert.encoder.layer.1.intermediate.dense');
    expect(moduleOf('lm_head')).toBe('lm_head');
  });
});

describe('minimalSubset', () => {
  it('finds the one set that restores a monotone predicate, in few calls, and null when nothing does', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 40 }), fc.array(fc.nat(39), { maxLength: 4 }), async (n, picks) => {
      const items = Array.from({ length: n }, (_, i) => `m${i}`);
      const needed = new Set(picks.filter((i) => i < n).map((i) => `m${i}`));
      if (!needed.size) return;
      let calls = 0;
      const holds = async (s: string[]) => { calls++; return [...needed].every((m) => s.includes(m)); };
      const found = await minimalSubset(items, holds);
      expect(new Set(found)).toEqual(needed);
      // QuickXplain: about 2k·log2(n/k) + 2k calls for k needed items of n.
      expect(calls).toBeLessThanOrEqual(2 * needed.size * Math.ceil(Math.log2(n / needed.size) + 1) + 2);
    }));
    expect(await minimalSubset(['a', 'b'], async () => false)).toBeNull();
  });
});
