// Merge strategies as data: names and parameters, how `.gittensor`, git config and GIT_TENSOR_MERGE
// write them, which rule applies to a tensor, and errors that name where a bad value was written.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors/index.js';
import {
  DEFAULTS, globToRegExp, makeStrategy, paramsFromStrings, parseStrategyText, rulesFromConfigList, strategyFor, type MergeRule,
} from '../../../src/merge/strategy.js';

/** `git config -f <file> --list` of a config file's text: exactly the lines the rules loader reads. */
function configList(text: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'git-tensor-rules-'));
  try {
    writeFileSync(join(dir, '.gittensor'), text);
    const r = spawnSync('git', ['config', '-f', join(dir, '.gittensor'), '--list'], { env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1' } });
    expect(r.status, r.stderr.toString()).toBe(0);
    return r.stdout.toString('utf8').split('\n').filter(Boolean);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The UsageError `fn` throws (fails the test when it throws nothing or something else). */
function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error('expected a UsageError');
}

const GITTENSOR = `# merge rules for this repository
[merge]
	strategy = fail
[Merge "Model.Embed_Tokens.*"]
	Strategy = ours
[merge "*.self_attn.*"]
	strategy = ties
	density = 0.3
[merge "adapters/*.safetensors:*lora_B*"]
	strategy = average
	weights = 0.7,0.3
`;

describe('strategy parameters', () => {
  it('defaults: fail, density 0.2, lambda 1, equal weights, seed 0, t 0.5', () => {
    expect(makeStrategy({}, 'x')).toEqual({ name: 'fail', density: 0.2, lambda: 1, weights: [0.5, 0.5], seed: 0, t: 0.5 });
    expect(DEFAULTS.density).toBe(0.2);
  });

  it('GIT_TENSOR_MERGE text: a strategy name and key=value settings, in any order', () => {
    expect(parseStrategyText('ties density=0.2', 'env')).toEqual({ name: 'ties', density: 0.2 });
    expect(parseStrategyText('  lambda=0.5   strategy=task-arithmetic ', 'env')).toEqual({ name: 'task-arithmetic', lambda: 0.5 });
    expect(parseStrategyText('average weights=0.7,0.3', 'env')).toEqual({ name: 'average', weights: [0.7, 0.3] });
    expect(parseStrategyText('dare density=0.5 seed=42', 'env')).toEqual({ name: 'dare', density: 0.5, seed: 42 });
    expect(parseStrategyText('slerp t=0.25', 'env')).toEqual({ name: 'slerp', t: 0.25 });
  });

  it.each([
    [{ density: '0' }, /density must be in \(0, 1\], got 0/],
    [{ density: '1.5' }, /density must be in \(0, 1\]/],
    [{ t: '2' }, /t must be in \[0, 1\]/],
    [{ seed: '-1' }, /seed must be a non-negative integer/],
    [{ seed: '1.5' }, /seed must be a non-negative integer/],
    [{ weights: '1,-1' }, /weights must be two finite numbers with a non-zero sum/],
    [{ strategy: 'tie' }, /unknown merge strategy "tie" \(one of fail, ours, theirs, base, average, task-arithmetic, ties, dare, dare-ties, slerp, protect\)/],
  ])('%o is refused with a UsageError naming where it was written', (kv, message) => {
    const err = usageError(() => makeStrategy(paramsFromStrings(kv, 'my-source'), 'my-source'));
    expect(err.message).toMatch(/^my-source: /);
    expect(err.message).toMatch(message);
    expect(err.code).toBe('E_USAGE');
  });

  it.each([
    [{ density: 'lots' }, /my-source: density must be a number, got "lots"/],
    [{ lambda: '' }, /my-source: lambda must be a number/],
    [{ weights: '0.7' }, /my-source: weights must be two numbers like 0.7,0.3/],
    [{ weights: '0.7,0.2,0.1' }, /weights must be two numbers/],
    [{ densty: '0.2' }, /my-source: unknown merge setting "densty"/],
  ])('%o does not parse: UsageError naming the source', (kv, message) => {
    expect(usageError(() => paramsFromStrings(kv, 'my-source')).message).toMatch(message);
  });
});

describe('rulesFromConfigList: lines as `git config --list` prints them', () => {
  it('git lower-cases the section and the key but keeps the subsection (the selector) as written', () => {
    expect(configList(GITTENSOR)).toEqual([
      'merge.strategy=fail',
      'merge.Model.Embed_Tokens.*.strategy=ours',
      'merge.*.self_attn.*.strategy=ties',
      'merge.*.self_attn.*.density=0.3',
      'merge.adapters/*.safetensors:*lora_B*.strategy=average',
      'merge.adapters/*.safetensors:*lora_B*.weights=0.7,0.3',
    ]);
  });

  it('one rule per section: [merge] covers every tensor, a selector is a tensor glob or path:tensor', () => {
    const rules = rulesFromConfigList(configList(GITTENSOR), 'merge', '.gittensor');
    expect(rules).toEqual<MergeRule[]>([
      { path: undefined, tensor: '*', params: { name: 'fail' }, source: '.gittensor [merge]' },
      { path: undefined, tensor: 'Model.Embed_Tokens.*', params: { name: 'ours' }, source: '.gittensor [merge "Model.Embed_Tokens.*"]' },
      { path: undefined, tensor: '*.self_attn.*', params: { name: 'ties', density: 0.3 }, source: '.gittensor [merge "*.self_attn.*"]' },
      {
        path: 'adapters/*.safetensors', tensor: '*lora_B*', params: { name: 'average', weights: [0.7, 0.3] },
        source: '.gittensor [merge "adapters/*.safetensors:*lora_B*"]',
      },
    ]);
  });

  it('only the named section is read (git config also lists merge.tensor.driver and friends)', () => {
    const lines = [
      'user.name=Test', 'merge.tensor.driver=git-tensor merge-driver %O %A %B %P', 'merge.tensor.name=git-tensor model-aware merge',
      'tensor-merge.*.mlp.*.strategy=theirs',
    ];
    expect(rulesFromConfigList(lines, 'tensor-merge', 'git config')).toEqual([
      { path: undefined, tensor: '*.mlp.*', params: { name: 'theirs' }, source: 'git config [tensor-merge "*.mlp.*"]' },
    ]);
  });

  it('a path selector with an empty tensor part covers every tensor of those files', () => {
    const [rule] = rulesFromConfigList(['merge.vision/*.safetensors:.strategy=theirs'], 'merge', 'f');
    expect(rule).toMatchObject({ path: 'vision/*.safetensors', tensor: '*' });
  });

  it('a bad value is reported with the file and the section it is in', () => {
    const err = usageError(() => rulesFromConfigList(configList('[merge "*.self_attn.*"]\n\tdensity = much\n'), 'merge', '.gittensor'));
    expect(err.message).toBe('.gittensor [merge "*.self_attn.*"]: density must be a number, got "much"');
    const unknown = usageError(() => rulesFromConfigList(configList('[merge]\n\tstrategi = ties\n'), 'merge', '.gittensor'));
    expect(unknown.message).toMatch(/^\.gittensor \[merge\]: unknown merge setting "strategi"/);
  });
});

describe('strategyFor: which rule decides a tensor', () => {
  const rules = rulesFromConfigList(configList(GITTENSOR), 'merge', '.gittensor');

  it('no rule: the defaults (fail)', () => {
    expect(strategyFor([], 'model.safetensors', 'w').name).toBe('fail');
  });

  it('every matching rule applies in order; a later rule overrides what it sets and keeps the rest', () => {
    expect(strategyFor(rules, 'model.safetensors', 'model.layers.0.mlp.up_proj.weight').name).toBe('fail');
    expect(strategyFor(rules, 'model.safetensors', 'Model.Embed_Tokens.weight').name).toBe('ours');
    expect(strategyFor(rules, 'model.safetensors', 'model.layers.3.self_attn.q_proj.weight')).toMatchObject({ name: 'ties', density: 0.3, lambda: 1 });
  });

  it('tensor globs are case-sensitive and * crosses the dots of tensor names', () => {
    expect(strategyFor(rules, 'model.safetensors', 'model.embed_tokens.weight').name).toBe('fail');
    expect(strategyFor(rules, 'model.safetensors', 'encoder.block.0.layer.1.self_attn.k.weight').name).toBe('ties');
  });

  it('a path:tensor rule applies to matching files only (full path or file name)', () => {
    const lora = 'base_model.model.layers.0.self_attn.q_proj.lora_B.weight';
    expect(strategyFor(rules, 'adapters/chat.safetensors', lora)).toMatchObject({ name: 'average', weights: [0.7, 0.3], density: 0.3 });
    expect(strategyFor(rules, 'model.safetensors', lora).name).toBe('ties');
    const byName = rulesFromConfigList(['merge.lora.safetensors:*.strategy=theirs'], 'merge', 'f');
    expect(strategyFor(byName, 'deep/dir/lora.safetensors', 'x').name).toBe('theirs');
    expect(strategyFor(byName, 'deep/dir/other.safetensors', 'x').name).toBe('fail');
  });

  it('git config rules come after the committed file and override it; the override (env, flags) comes last', () => {
    const local = rulesFromConfigList(['tensor-merge.*.self_attn.*.strategy=dare', 'tensor-merge.*.self_attn.*.seed=7'], 'tensor-merge', 'git config');
    const all = [...rules, ...local];
    const attn = 'model.layers.0.self_attn.v_proj.weight';
    expect(strategyFor(all, 'model.safetensors', attn)).toMatchObject({ name: 'dare', density: 0.3, seed: 7 });
    expect(strategyFor(all, 'model.safetensors', attn, parseStrategyText('ties density=0.5', 'GIT_TENSOR_MERGE'))).toMatchObject({ name: 'ties', density: 0.5, seed: 7 });
    // The override reaches tensors no rule mentions, too.
    expect(strategyFor(all, 'model.safetensors', 'lm_head.weight', { name: 'theirs' }).name).toBe('theirs');
  });

  it('a section written again later in the file is a later rule: it overrides the rules between', () => {
    // [merge "*"] ours, then [merge "*.attn.*"] ties, then [merge "*"] theirs again: for an attention
    // tensor the last section that matches it says theirs.
    const lines = configList('[merge "*"]\n\tstrategy = ours\n[merge "*.attn.*"]\n\tstrategy = ties\n[merge "*"]\n\tstrategy = theirs\n');
    const r = rulesFromConfigList(lines, 'merge', '.gittensor');
    expect(strategyFor(r, 'm.safetensors', 'layers.0.attn.q').name).toBe('theirs');
    expect(strategyFor(r, 'm.safetensors', 'layers.0.mlp.up').name).toBe('theirs');
  });

  it('a rule with a bad value is reported with where it was written, whichever tensor asks', () => {
    const bad = rulesFromConfigList(configList('[merge]\n\tstrategy = ties\n[merge "*.attn.*"]\n\tdensity = 2\n'), 'merge', '.gittensor');
    expect(strategyFor(bad, 'm.safetensors', 'mlp.up').name).toBe('ties');
    const err = usageError(() => strategyFor(bad, 'm.safetensors', 'layers.0.attn.q'));
    expect(err.message).toMatch(/\.gittensor \[merge "\*\.attn\.\*"\]/);
    expect(err.message).toMatch(/density must be in \(0, 1\], got 2/);
  });

  it('a bad GIT_TENSOR_MERGE value is reported as coming from GIT_TENSOR_MERGE', () => {
    const env = parseStrategyText('ties density=2', 'GIT_TENSOR_MERGE');
    const err = usageError(() => strategyFor(rules, 'model.safetensors', 'lm_head.weight', env));
    expect(err.message).toMatch(/GIT_TENSOR_MERGE/);
    const unknown = usageError(() => strategyFor([], 'model.safetensors', 'w', parseStrategyText('tie', 'GIT_TENSOR_MERGE')));
    expect(unknown.message).toMatch(/GIT_TENSOR_MERGE/);
  });
});

describe('globToRegExp', () => {
  it('tensor globs (crossSlash): * and ? match any character, dots included', () => {
    const re = globToRegExp('*.self_attn.?_proj.*', true);
    expect(re.test('model.layers.10.self_attn.q_proj.weight')).toBe(true);
    expect(re.test('model.layers.10.self_attn.qk_proj.weight')).toBe(false);
    expect(re.test('model.layers.10.mlp.up_proj.weight')).toBe(false);
    expect(globToRegExp('*', true).test('a/b.c')).toBe(true);
  });

  it('path globs: * and ? stop at /, ** crosses it', () => {
    expect(globToRegExp('*.safetensors', false).test('model.safetensors')).toBe(true);
    expect(globToRegExp('*.safetensors', false).test('adapters/a.safetensors')).toBe(false);
    expect(globToRegExp('adapters/*.safetensors', false).test('adapters/a.safetensors')).toBe(true);
    expect(globToRegExp('**/*.safetensors', false).test('a/b/c.safetensors')).toBe(true);
    expect(globToRegExp('model-?????-of-00002.safetensors', false).test('model-00001-of-00002.safetensors')).toBe(true);
    expect(globToRegExp('?', false).test('/')).toBe(false);
  });

  it('anchored at both ends, and regex characters are literal', () => {
    expect(globToRegExp('lm_head.weight', true).test('lm_headxweight')).toBe(false);
    expect(globToRegExp('lm_head.weight', true).test('model.lm_head.weight')).toBe(false);
    expect(globToRegExp('lm_head.weight', true).test('lm_head.weight.bias')).toBe(false);
    for (const name of ['a+b', 'w(1)', 'x$y', 'p^q', 'a|b', 'c{2}', 'back\\slash', 'br[0]']) {
      expect(globToRegExp(name, true).test(name), name).toBe(true);
    }
    expect(globToRegExp('a+', true).test('aa')).toBe(false);
  });

  it('tensor names with newlines are still matched whole', () => {
    expect(globToRegExp('a*b', true).test('a\nb')).toBe(true);
  });
});
