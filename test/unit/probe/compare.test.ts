// The behaviour diff from two versions' results: flips (gained/lost/changed), agreement, logprob and
// text-loss changes, the top-k KL estimate (exact when the lists hold the whole distribution; checked by
// hand otherwise), token mining; and the strict validation runners' output goes through.

import { describe, expect, it } from 'vitest';
import { compareResults, comparePosition } from '../../../src/probe/compare.js';
import { parseProbes } from '../../../src/probe/probes.js';
import { validateResults, type VersionResults } from '../../../src/probe/result.js';

const L = Math.log;

function version(pFirst: number[], right: boolean, loss: number): VersionResults {
  const tokens = ['a', 'b', 'c'];
  const dist = [tokens.map((t, i) => [t, L(pFirst[i]!)] as [string, number]).sort((x, y) => y[1] - x[1])];
  return {
    schema: 1,
    probes: [
      { id: 'p', kind: 'causal', targets: [{ text: 'a', tokens: 1, logprob: L(pFirst[0]!), prob: pFirst[0]!, rank: 1 }], answer: right ? 'a' : 'b', correct: right, top5: [], dist },
      { id: 't', kind: 'text', tokens: 3, loss },
    ],
  };
}

describe('compareResults', () => {
  it('flips, agreement, changes, exact KL over a whole distribution, and mined tokens', () => {
    const a = version([0.5, 0.3, 0.2], true, 2), b = version([0.2, 0.6, 0.2], false, 2.5);
    const d = compareResults(a, b);
    expect(d.flips).toEqual([{ id: 'p', from: 'a', to: 'b', change: 'lost' }]);
    expect(d.agreement).toBe(0);
    expect(d.changes[0]!.delta).toBeCloseTo(L(0.2) - L(0.5), 10);
    expect(d.textLoss[0]!.delta).toBeCloseTo(0.5, 10);
    expect(d.meanKl).toBeCloseTo(0.5 * L(0.5 / 0.2) + 0.3 * L(0.3 / 0.6) + 0.2 * L(1), 10);
    expect(d.moved.up.map((t) => t.token)).toEqual(['b']);
    expect(d.moved.down.map((t) => t.token)).toEqual(['a']);
    expect(compareResults(b, a).flips[0]!.change).toBe('gained');
  });

  it('top-k estimate: a token outside one side\'s list gets its tail spread over the missing tokens and the rest', () => {
    // a lists x 0.6, y 0.3 (tail 0.1); b lists x 0.5, z 0.4 (tail 0.1). Union {x, y, z} + rest.
    // a: z missing -> min(0.3, 0.1 / 2) = 0.05, rest 0.05; b: y missing -> min(0.4, 0.05) = 0.05, rest 0.05.
    const { kl } = comparePosition([['x', L(0.6)], ['y', L(0.3)]], [['x', L(0.5)], ['z', L(0.4)]]);
    const expected = 0.6 * L(0.6 / 0.5) + 0.3 * L(0.3 / 0.05) + 0.05 * L(0.05 / 0.4) + 0.05 * L(0.05 / 0.05);
    expect(kl).toBeCloseTo(expected, 10);
  });
});

describe('validateResults', () => {
  const probes = parseProbes('{"id":"p","prompt":"x","targets":["a","b"]}\n{"id":"t","text":"abc"}\n', 'p.jsonl');
  const good = () => ({
    schema: 1,
    probes: [
      { id: 't', kind: 'text', tokens: 3, loss: 1.5 },
      { id: 'p', kind: 'causal', targets: [{ text: 'a', tokens: 1, logprob: L(0.5), prob: 0.5, rank: 1 }, { text: 'b', tokens: 1, logprob: L(0.25), prob: 0.25 }], answer: 'a', correct: true, top5: [{ token: 'a', logprob: L(0.5) }] },
    ],
  });

  it('accepts valid results and puts them in the probes file\'s order', () => {
    expect(validateResults(good(), probes, 'runner').probes.map((r) => r.id)).toEqual(['p', 't']);
  });

  const broken: [string, (r: any) => void, RegExp][] = [
    ['a missing probe', (r) => r.probes.pop(), /no result for 1 probe\(s\): p/],
    ['an unknown id', (r) => (r.probes[0].id = 'zz'), /id "zz" is not in p\.jsonl/],
    ['a wrong schema', (r) => (r.schema = 2), /"schema" must be 1/],
    ['prob that is not exp(logprob)', (r) => (r.probes[1].targets[0].prob = 0.9), /targets\[0\]\.prob must be exp\(logprob\)/],
    ['a positive logprob', (r) => (r.probes[1].targets[1].logprob = 0.5), /must be <= 0\.0001/],
    ['a NaN loss', (r) => (r.probes[0].loss = null), /"loss" must be a finite number/],
    ['a renamed target', (r) => (r.probes[1].targets[1].text = 'c'), /targets\[1\]\.text must be "b"/],
    ['the wrong kind', (r) => (r.probes[0].kind = 'choices'), /"kind" must be "text"/],
    ['an answer that is no target', (r) => (r.probes[1].answer = 'q'), /"answer" must be one of the targets/],
  ];
  for (const [what, edit, message] of broken) {
    it(`refuses ${what}, naming the source`, () => {
      const r = good();
      edit(r);
      expect(() => validateResults(r, probes, 'probe command "x"')).toThrow(message);
      expect(() => validateResults(r, probes, 'probe command "x"')).toThrow(/^probe command "x": /);
    });
  }
});
