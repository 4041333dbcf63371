// Two people fine-tune the same base checkpoint on two branches and merge with plain `git merge`: tensors
// merge element by element, updates that do not overlap merge exactly with no configuration, and
// overlapping updates are settled by a declared strategy (`.gittensor`, git config, GIT_TENSOR_MERGE) or
// reported as a conflict the user inspects (`git tensor conflicts`) and finishes (`git tensor resolve`).
// Every merged file is checked against an expected result computed in the test (test/helpers/merge-models.ts).

import { beforeAll, describe, expect, it } from 'vitest';

import { kernelInfo } from '../../src/kernels/index.js';
import {
  commitFineTunes, dareCheck, disjointIndices, editValues, expectedMerge, floatTensor, mergeMismatches, readCheckpoint, withTensors,
  type FloatDType, type OracleStrategy,
} from '../helpers/merge-models.js';
import { toSafetensors, type TensorInput } from '../helpers/models.js';
import { makeRepo, pointerAt, type Repo, type RunResult } from '../helpers/repo.js';

const FILE = 'model.safetensors';
const META = { format: 'pt' };

const EMBED = 'model.embed_tokens.weight';
const Q = 'model.layers.0.self_attn.q_proj.weight';
const V = 'model.layers.0.self_attn.v_proj.weight';
const UP = 'model.layers.0.mlp.up_proj.weight';
const NORM = 'model.norm.weight';
const HEAD = 'lm_head.weight';

/** About 290 KiB in six tensors, F32 and BF16. */
const base: TensorInput[] = [
  floatTensor(EMBED, 'F32', [256, 64], 'base'),
  floatTensor(Q, 'F32', [128, 128], 'base'),
  floatTensor(V, 'BF16', [128, 128], 'base'),
  floatTensor(UP, 'BF16', [256, 128], 'base'),
  floatTensor(NORM, 'F32', [128], 'base'),
  floatTensor(HEAD, 'F32', [256, 64], 'base'),
];
const baseFile = toSafetensors(base, META);

const tensor = (list: readonly TensorInput[], name: string) => list.find((t) => t.name === name)!;
const elements = (t: TensorInput) => t.shape.reduce((a, b) => a * b, 1);

/** Every element of the tensor moved a little, as full fine-tuning does. */
const dense = (name: string, side: string) => editValues(tensor(base, name), `dense-${side}`);

/** Diff pruning: each side updates its own 0.5% of the elements (at least one), the masks disjoint. */
function sparse(name: string, side: 0 | 1): TensorInput {
  const t = tensor(base, name);
  const masks = disjointIndices(elements(t), Math.ceil(0.005 * elements(t)), 2, `mask/${name}`);
  return editValues(t, `sparse-${side}`, { indices: masks[side] });
}

/** Both sides fully fine-tuned the embeddings and attention; the MLP only sparsely; one side each touched norm and head. */
const denseOurs = withTensors(base, [dense(EMBED, 'A'), dense(Q, 'A'), dense(V, 'A'), sparse(UP, 0), dense(HEAD, 'A')]);
const denseTheirs = withTensors(base, [dense(EMBED, 'B'), dense(Q, 'B'), dense(V, 'B'), sparse(UP, 1), dense(NORM, 'B')]);
const CONFLICTING = [EMBED, Q, V];

function fineTuned(repo: Repo, ours: TensorInput[], theirs: TensorInput[], extra: Record<string, string> = {}): void {
  commitFineTunes(repo, { base: { [FILE]: baseFile, ...extra }, ours: { [FILE]: toSafetensors(ours, META) }, theirs: { [FILE]: toSafetensors(theirs, META) } });
}

function merge(repo: Repo, env: Record<string, string> = {}): RunResult & { output: string } {
  const r = repo.git(['merge', '--no-edit', 'task-b'], { allowFail: true, env });
  return { ...r, output: r.stdout + r.stderr };
}

/** `strategyOf(name)` says what the merged tensor must be; each tensor of the file is checked against it. */
function mismatches(file: Buffer, ours: TensorInput[], theirs: TensorInput[], strategyOf: (name: string) => OracleStrategy | { name: 'dare'; density: number }): Record<string, string[]> {
  const merged = readCheckpoint(file);
  const out: Record<string, string[]> = {};
  expect(merged.header.equals(readCheckpoint(baseFile).header), 'the merged header is the base header').toBe(true);
  for (const o of base) {
    const dtype = o.dtype as FloatDType;
    const [a, b] = [tensor(ours, o.name).data, tensor(theirs, o.name).data];
    const got = merged.tensors.get(o.name)!.data;
    const s = strategyOf(o.name);
    const bad = s.name === 'dare' ? dareCheck(dtype, o.data, a, b, got, s.density).mismatches : mergeMismatches(got, expectedMerge(dtype, o.data, a, b, s));
    if (bad.length) out[o.name] = bad;
  }
  return out;
}

function conflictsJson(repo: Repo): { status: number; files: { path: string; problem?: string; tensors: Record<string, unknown>[]; metadata: Record<string, unknown>[] }[] } {
  const r = repo.gitTensor(['conflicts', '--json'], { allowFail: true });
  return { status: r.status, ...JSON.parse(r.stdout) };
}

function expectClean(repo: Repo): void {
  expect(repo.git(['status', '--porcelain']).stdout).toBe('');
}

const unmerged = (repo: Repo) => repo.git(['ls-files', '-u']).stdout !== '';

describe('merging fine-tunes that do not overlap: exact, with no configuration', () => {
  it('two diff-pruning fine-tunes (0.5% of each tensor, disjoint masks) merge to exactly base + dA + dB', () => {
    const repo = makeRepo();
    const names = base.map((t) => t.name);
    const ours = withTensors(base, names.map((n) => sparse(n, 0)));
    const theirs = withTensors(base, names.map((n) => sparse(n, 1)));
    fineTuned(repo, ours, theirs);

    const r = merge(repo);
    expect(r.status, r.output).toBe(0);
    // Applying B's sparse update to A's model: every tensor holds both updates, nothing else moved.
    const expected = toSafetensors(base.map((t) => editValues(editValues(t, 'sparse-0', { indices: disjointIndices(elements(t), Math.ceil(0.005 * elements(t)), 2, `mask/${t.name}`)[0] }),
      'sparse-1', { indices: disjointIndices(elements(t), Math.ceil(0.005 * elements(t)), 2, `mask/${t.name}`)[1] })), META);
    const merged = repo.read(FILE);
    expect(merged.length).toBe(expected.length);
    expect(merged.equals(expected), 'the checked-out merge is base + dA + dB, byte for byte').toBe(true);
    expect(r.stderr).toContain(`git-tensor: merged ${FILE}: 0 tensor(s) taken whole, ${base.length} merged exactly by disjoint union`);
    expect(repo.git(['rev-list', '--parents', '-1', 'HEAD']).stdout.trim().split(' ')).toHaveLength(3);
    expectClean(repo);
    expect(repo.gitTensor(['fsck']).status).toBe(0);
    // A fresh checkout of the merge commit gives the same bytes.
    repo.remove(FILE);
    repo.git(['checkout', '--', FILE]);
    expect(repo.read(FILE).equals(expected)).toBe(true);
  });

  it('frozen-backbone fine-tunes (each branch trained different whole tensors) merge tensor by tensor', () => {
    const repo = makeRepo();
    const ours = withTensors(base, [dense(EMBED, 'A'), dense(HEAD, 'A')]);
    const theirs = withTensors(base, [dense(Q, 'B'), dense(V, 'B'), dense(NORM, 'B')]);
    fineTuned(repo, ours, theirs);

    const r = merge(repo);
    expect(r.status, r.output).toBe(0);
    const expected = toSafetensors(withTensors(base, [dense(EMBED, 'A'), dense(HEAD, 'A'), dense(Q, 'B'), dense(V, 'B'), dense(NORM, 'B')]), META);
    expect(repo.read(FILE).equals(expected)).toBe(true);
    expect(r.stderr).toContain(`git-tensor: merged ${FILE}: ${base.length} tensor(s) taken whole, 0 merged exactly by disjoint union`);
    expectClean(repo);
  });
});

describe('dense fine-tunes under the default strategy (fail)', () => {
  it('git reports a CONFLICT, `git tensor conflicts` explains it, and `git merge --abort` restores HEAD exactly', () => {
    const repo = makeRepo();
    fineTuned(repo, denseOurs, denseTheirs);
    const oursFile = repo.read(FILE);
    const head = repo.git(['rev-parse', 'HEAD']).stdout;

    const r = merge(repo);
    expect(r.status).not.toBe(0);
    expect(r.output).toContain(`CONFLICT (content): Merge conflict in ${FILE}`);
    for (const name of CONFLICTING) expect(r.stderr).toMatch(new RegExp(`CONFLICT ${name.replace(/\./g, '\\.')}: \\d+ element\\(s\\) changed differently on both sides`));
    expect(r.stderr).toContain(`git tensor resolve ${FILE} --strategy <name>`);
    expect(repo.git(['status', '--porcelain']).stdout).toBe(`UU ${FILE}\n`);

    const report = conflictsJson(repo);
    expect(report.status).toBe(1);
    expect(report.files.map((f) => f.path)).toEqual([FILE]);
    const rows = report.files[0]!.tensors;
    expect(rows.map((t) => t.tensor)).toEqual(CONFLICTING);
    for (const row of rows) {
      const name = row.tensor as string;
      const o = tensor(base, name);
      const want = expectedMerge(o.dtype as FloatDType, o.data, tensor(denseOurs, name).data, tensor(denseTheirs, name).data, { name: 'base' });
      expect(row, name).toMatchObject({
        elements: elements(o), changedOurs: want.changedOurs, changedTheirs: want.changedTheirs, conflicting: want.conflicts,
      });
      expect(row.conflictingPercent as number).toBeCloseTo((100 * want.conflicts) / elements(o), 6);
      expect(row.signConflicting as number).toBeGreaterThan(0);
    }
    const text = repo.gitTensor(['conflicts'], { allowFail: true });
    expect(text.status).toBe(1);
    expect(text.stdout).toContain(`${FILE}: 3 conflicting tensor(s)`);

    // The working file is a valid checkpoint: what merged cleanly is merged, conflicting tensors keep ours.
    const partial = toSafetensors(withTensors(denseOurs, [tensor(denseTheirs, NORM), editValues(sparse(UP, 0), 'sparse-1', {
      indices: disjointIndices(elements(tensor(base, UP)), Math.ceil(0.005 * elements(tensor(base, UP))), 2, `mask/${UP}`)[1],
    })]), META);
    expect(repo.read(FILE).equals(partial)).toBe(true);

    repo.git(['merge', '--abort']);
    expect(repo.read(FILE).equals(oursFile), 'merge --abort gives back HEAD\'s bytes').toBe(true);
    expect(repo.git(['rev-parse', 'HEAD']).stdout).toBe(head);
    expectClean(repo);
    expect(repo.gitTensor(['conflicts']).stdout).toContain('no unmerged checkpoints');
  });

  describe('`git tensor resolve --strategy` finishes the merge with the formula of each strategy', () => {
    let repo: Repo;
    let ours: string;
    beforeAll(() => {
      repo = makeRepo({ scope: 'file' });
      fineTuned(repo, denseOurs, denseTheirs);
      ours = repo.git(['rev-parse', 'HEAD']).stdout.trim();
    });

    it.each<[string, string[], OracleStrategy | { name: 'dare'; density: number }]>([
      ['ours', [], { name: 'ours' }],
      ['theirs', [], { name: 'theirs' }],
      ['base', [], { name: 'base' }],
      ['average', ['--weights', '0.7,0.3'], { name: 'average', weights: [0.7, 0.3] }],
      ['task-arithmetic', ['--lambda', '0.8'], { name: 'task-arithmetic', lambda: 0.8 }],
      ['ties', ['--density', '0.3'], { name: 'ties', density: 0.3 }],
      ['dare', ['--density', '0.5', '--seed', '11'], { name: 'dare', density: 0.5 }],
      ['slerp', ['--t', '0.3'], { name: 'slerp', t: 0.3 }],
    ])('%s', (strategy, flags, oracle) => {
      repo.git(['reset', '-q', '--hard', ours]);
      expect(merge(repo).status).not.toBe(0);
      const r = repo.gitTensor(['resolve', FILE, '--strategy', strategy, ...flags], { allowFail: true });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain(`resolved ${FILE} and staged it`);
      expect(repo.git(['status', '--porcelain']).stdout).toBe(`M  ${FILE}\n`);

      const file = repo.read(FILE);
      expect(mismatches(file, denseOurs, denseTheirs, (name) => (CONFLICTING.includes(name) ? oracle : { name: 'ours' }))).toEqual({});
      // The staged pointer is the file's: committing stores exactly what is checked out.
      repo.git(['commit', '-q', '--no-edit']);
      expectClean(repo);
      repo.remove(FILE);
      repo.git(['checkout', '--', FILE]);
      expect(repo.read(FILE).equals(file)).toBe(true);
      if (strategy === 'dare') {
        // Same seed, same merge: run it again from scratch.
        repo.git(['reset', '-q', '--hard', ours]);
        merge(repo);
        repo.gitTensor(['resolve', FILE, '--strategy', 'dare', '--density', '0.5', '--seed', '11']);
        expect(repo.read(FILE).equals(file), 'dare with the same seed gives the same bytes').toBe(true);
        repo.git(['commit', '-q', '--no-edit']);
      }
      expect(repo.gitTensor(['fsck']).status).toBe(0);
    });
  });
});

describe('the same bytes from every kernel implementation (js, scalar, the default)', () => {
  // The TypeScript kernels are what a machine without a compiler runs; scalar is the portable native
  // code; the default is the best this machine has. Each runs one `git merge` in which every strategy
  // settles its own tensors (a .gittensor rule each), and `resolve --strategy` with ties and dare (the
  // strategies that keep the base's bits where no delta survives). Each tensor is checked against its
  // formula, and the files must be identical across implementations.
  type Case = { strategy: string; rule: string[]; oracle: OracleStrategy | { name: 'dare'; density: number } | null };
  const CASES: Case[] = [
    { strategy: 'ours', rule: [], oracle: { name: 'ours' } },
    { strategy: 'theirs', rule: [], oracle: { name: 'theirs' } },
    { strategy: 'base', rule: [], oracle: { name: 'base' } },
    { strategy: 'average', rule: ['weights = 0.7,0.3'], oracle: { name: 'average', weights: [0.7, 0.3] } },
    { strategy: 'task-arithmetic', rule: ['lambda = 0.8'], oracle: { name: 'task-arithmetic', lambda: 0.8 } },
    { strategy: 'ties', rule: ['density = 0.3'], oracle: { name: 'ties', density: 0.3 } },
    { strategy: 'dare', rule: ['density = 0.5', 'seed = 11'], oracle: { name: 'dare', density: 0.5 } },
    // No independent formula here for dare-ties: it is held to the other implementations' bytes.
    { strategy: 'dare-ties', rule: ['density = 0.5', 'seed = 11'], oracle: null },
    { strategy: 'slerp', rule: ['t = 0.3'], oracle: { name: 'slerp', t: 0.3 } },
  ];
  const OTHER: FloatDType[] = ['BF16', 'F16', 'F64'];
  /** Two small tensors per strategy, F32 and one of BF16/F16/F64: about 210 KiB. */
  const small = CASES.flatMap(({ strategy }, i) => [
    floatTensor(`${strategy}.f32`, 'F32', [48, 64], 'base'),
    floatTensor(`${strategy}.${OTHER[i % 3]!.toLowerCase()}`, OTHER[i % 3]!, [48, 64], 'base'),
  ]);
  const caseOf = (name: string) => CASES.find((c) => name.startsWith(`${c.strategy}.`))!;
  const smallOurs = small.map((t) => editValues(t, 'dense-A'));
  const smallTheirs = small.map((t) => editValues(t, 'dense-B'));
  const rules = CASES.map((c) => [`[merge "${c.strategy}.*"]`, `\tstrategy = ${c.strategy}`, ...c.rule.map((l) => `\t${l}`)].join('\n')).join('\n') + '\n';
  const SUPPORTED = kernelInfo().supported;
  const KERNELS = [
    { label: 'js', active: 'js', env: { GIT_TENSOR_KERNELS: 'js' } },
    { label: 'scalar', active: 'scalar', env: { GIT_TENSOR_KERNELS: 'scalar' } },
    { label: 'default', active: kernelInfo().active, env: {} as Record<string, string> },
  ];
  /** "git merge" / "resolve ties" ... -> implementation -> the merged file. */
  const written = new Map<string, Map<string, Buffer>>();

  /** Per tensor, what differs from the strategy's formula (`strategyOf` picks the formula). */
  function smallMismatches(file: Buffer, strategyOf: (name: string) => Case['oracle']): Record<string, string[]> {
    const merged = readCheckpoint(file);
    const out: Record<string, string[]> = {};
    for (const [k, o] of small.entries()) {
      const dtype = o.dtype as FloatDType;
      const [a, b, got] = [smallOurs[k]!.data, smallTheirs[k]!.data, merged.tensors.get(o.name)!.data];
      const s = strategyOf(o.name);
      if (!s) continue;
      const bad = s.name === 'dare' ? dareCheck(dtype, o.data, a, b, got, s.density).mismatches : mergeMismatches(got, expectedMerge(dtype, o.data, a, b, s));
      if (bad.length) out[o.name] = bad.slice(0, 3);
    }
    return out;
  }

  describe.each(KERNELS)('$label kernels', ({ label, active, env }) => {
    let repo: Repo;
    let head: string;
    const keep = (what: string, file: Buffer) => {
      if (!written.has(what)) written.set(what, new Map());
      written.get(what)!.set(label, file);
    };
    beforeAll(() => {
      repo = makeRepo({ scope: 'file' });
      Object.assign(repo.env, env);
      commitFineTunes(repo, {
        base: { [FILE]: toSafetensors(small, META) },
        ours: { [FILE]: toSafetensors(smallOurs, META) },
        theirs: { [FILE]: toSafetensors(smallTheirs, META) },
      });
      head = repo.git(['rev-parse', 'HEAD']).stdout.trim();
    });

    it('are the kernels that run', () => {
      // An unavailable GIT_TENSOR_KERNELS warns and falls back: the comparison would then compare nothing.
      if (!SUPPORTED.includes(active)) expect.fail(`the ${active} kernels are not built here (supported: ${SUPPORTED.join(', ')}); run \`npm run build:native\``);
      expect(repo.gitTensor(['doctor'], { allowFail: true }).stdout).toContain(`kernels: active ${active};`);
    });

    it('`git merge` with a .gittensor rule per strategy: every tensor follows its formula', () => {
      repo.git(['reset', '-q', '--hard', head]);
      repo.write('.gittensor', rules);
      repo.commit(['.gittensor'], 'a strategy for each tensor');
      const r = merge(repo);
      expect(r.status, r.output).toBe(0);
      for (const { strategy } of CASES) expect(r.stderr).toMatch(new RegExp(`${strategy}\\.f32: \\d+ conflicting element\\(s\\) resolved by ${strategy}\\n`));
      const file = repo.read(FILE);
      keep('git merge', file);
      expect(smallMismatches(file, (name) => caseOf(name).oracle)).toEqual({});
      expectClean(repo);
    });

    it.each(['ties --density 0.3', 'dare --density 0.5 --seed 11'])('`git tensor resolve --strategy %s` finishes a conflicted merge', (flags) => {
      repo.git(['reset', '-q', '--hard', head]);
      expect(merge(repo).status).not.toBe(0);
      const r = repo.gitTensor(['resolve', FILE, '--strategy', ...flags.split(' ')], { allowFail: true });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(repo.git(['status', '--porcelain']).stdout).toBe(`M  ${FILE}\n`);
      const file = repo.read(FILE);
      keep(`resolve ${flags}`, file);
      const oracle = flags.startsWith('ties') ? { name: 'ties' as const, density: 0.3 } : { name: 'dare' as const, density: 0.5 };
      expect(smallMismatches(file, () => oracle)).toEqual({});
      repo.git(['commit', '-q', '--no-edit']);
      expectClean(repo);
    });
  });

  it.each(['git merge', 'resolve ties --density 0.3', 'resolve dare --density 0.5 --seed 11'])('%s: identical files', (what) => {
    const files = written.get(what) ?? new Map<string, Buffer>();
    expect([...files.keys()], 'every implementation merged').toEqual(KERNELS.map((k) => k.label));
    const [first, ...rest] = [...files.values()];
    for (const [k, f] of rest.entries()) expect(f.equals(first!), `${KERNELS[k + 1]!.label} vs ${KERNELS[0]!.label}`).toBe(true);
  });
});

describe('strategies declared in the repository apply during `git merge`', () => {
  const RULES = [
    '# How this repository merges checkpoints: embeddings keep ours, attention is TIES-merged,',
    '# everything else must not overlap.',
    '[merge "model.embed_tokens.*"]',
    '\tstrategy = ours',
    '[merge "*.self_attn.*"]',
    '\tstrategy = ties',
    '\tdensity = 0.3',
    '',
  ].join('\n');
  const byRules = (name: string): OracleStrategy => (name === EMBED ? { name: 'ours' } : name === Q || name === V ? { name: 'ties', density: 0.3 } : { name: 'base' });

  it('.gittensor rules settle every overlap: the merge commits on its own', () => {
    const repo = makeRepo();
    fineTuned(repo, denseOurs, denseTheirs, { '.gittensor': RULES });
    const r = merge(repo);
    expect(r.status, r.output).toBe(0);
    expect(mismatches(repo.read(FILE), denseOurs, denseTheirs, byRules)).toEqual({});
    expect(r.stderr).toMatch(new RegExp(`${EMBED.replace(/\./g, '\\.')}: \\d+ conflicting element\\(s\\) resolved by ours`));
    expect(r.stderr).toMatch(new RegExp(`${Q.replace(/\./g, '\\.')}: \\d+ conflicting element\\(s\\) resolved by ties`));
    expectClean(repo);
  });

  it('what the rules leave (fail) is a conflict, and `git tensor conflicts` lists only that', () => {
    const repo = makeRepo();
    const ours = withTensors(denseOurs, [dense(HEAD, 'A')]);
    const theirs = withTensors(denseTheirs, [dense(HEAD, 'B')]);
    fineTuned(repo, ours, theirs, { '.gittensor': RULES });
    const r = merge(repo);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`CONFLICT ${HEAD}:`);
    expect(r.stderr).not.toContain(`CONFLICT ${EMBED}`);
    expect(r.stderr).not.toContain(`CONFLICT ${Q}`);
    // The rules already settled embeddings and attention: only lm_head needs the user.
    expect(conflictsJson(repo).files[0]!.tensors.map((t) => t.tensor)).toEqual([HEAD]);
  });

  it('resolve finishes what the rules left, and the rules still apply to the rest', () => {
    const repo = makeRepo();
    const ours = withTensors(denseOurs, [dense(HEAD, 'A')]);
    const theirs = withTensors(denseTheirs, [dense(HEAD, 'B')]);
    fineTuned(repo, ours, theirs, { '.gittensor': RULES });
    expect(merge(repo).status).not.toBe(0);
    const r = repo.gitTensor(['resolve', FILE, '--tensor', HEAD, '--strategy', 'average'], { allowFail: true });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(mismatches(repo.read(FILE), ours, theirs, (name) => (name === HEAD ? { name: 'average' } : byRules(name)))).toEqual({});
    repo.git(['commit', '-q', '--no-edit']);
    expectClean(repo);
  });

  it('git config [tensor-merge] overrides .gittensor; GIT_TENSOR_MERGE overrides both for one command', () => {
    const repo = makeRepo();
    fineTuned(repo, denseOurs, denseTheirs, { '.gittensor': '[merge]\n\tstrategy = ours\n' });
    repo.git(['config', 'tensor-merge.*.self_attn.*.strategy', 'theirs']);

    const r1 = merge(repo);
    expect(r1.status, r1.output).toBe(0);
    expect(mismatches(repo.read(FILE), denseOurs, denseTheirs, (n) => (n === Q || n === V ? { name: 'theirs' } : { name: 'ours' }))).toEqual({});

    repo.git(['reset', '-q', '--hard', 'ORIG_HEAD']);
    const r2 = merge(repo, { GIT_TENSOR_MERGE: 'task-arithmetic lambda=0.5' });
    expect(r2.status, r2.output).toBe(0);
    expect(mismatches(repo.read(FILE), denseOurs, denseTheirs, () => ({ name: 'task-arithmetic', lambda: 0.5 }))).toEqual({});
    expect(r2.stderr).toContain('resolved by task-arithmetic');
  });

  it('a bad rule stops the merge with an error naming where it is written', () => {
    const repo = makeRepo();
    fineTuned(repo, denseOurs, denseTheirs, { '.gittensor': '[merge "*.self_attn.*"]\n\tstrategy = ties\n\tdensity = 3\n' });
    const r = merge(repo);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/\.gittensor \[merge "\*\.self_attn\.\*"\].*density must be in \(0, 1\], got 3/);
  });

  it('the summary on stderr lists tensors taken whole, merged by disjoint union, and resolved by strategy', () => {
    const repo = makeRepo();
    const ours = withTensors(base, [sparse(EMBED, 0), dense(Q, 'A'), dense(HEAD, 'A')]);
    const theirs = withTensors(base, [sparse(EMBED, 1), dense(Q, 'B'), dense(NORM, 'B')]);
    fineTuned(repo, ours, theirs, { '.gittensor': '[merge "*.self_attn.*"]\n\tstrategy = average\n' });
    const r = merge(repo);
    expect(r.status, r.output).toBe(0);
    const o = tensor(base, Q);
    const conflicts = expectedMerge('F32', o.data, tensor(ours, Q).data, tensor(theirs, Q).data, { name: 'average' }).conflicts;
    expect(r.stderr).toContain([
      `git-tensor: merged ${FILE}: 4 tensor(s) taken whole, 1 merged exactly by disjoint union`,
      `  ${Q}: ${conflicts} conflicting element(s) resolved by average`,
    ].join('\n'));
    expect(mismatches(repo.read(FILE), ours, theirs, (n) => (n === Q ? { name: 'average' } : { name: 'base' }))).toEqual({});
  });
});

describe('resolving a file in steps', () => {
  it('`resolve --tensor` settles some tensors now and remembers them until the file is done', () => {
    const repo = makeRepo();
    fineTuned(repo, denseOurs, denseTheirs);
    expect(merge(repo).status).not.toBe(0);

    const step1 = repo.gitTensor(['resolve', FILE, '--tensor', 'model.embed_tokens.*', '--strategy', 'theirs'], { allowFail: true });
    expect(step1.status).toBe(1);
    expect(step1.stdout).toContain(`${FILE} is still unmerged`);
    expect(step1.stderr + step1.stdout).toContain(`${EMBED}: `);
    expect(unmerged(repo)).toBe(true);

    const step2 = repo.gitTensor(['resolve', FILE, '--tensor', '*.self_attn.*', '--strategy', 'average'], { allowFail: true });
    expect(step2.status, step2.stdout + step2.stderr).toBe(0);
    expect(unmerged(repo)).toBe(false);
    expect(mismatches(repo.read(FILE), denseOurs, denseTheirs, (n) => (n === EMBED ? { name: 'theirs' } : { name: 'average' }))).toEqual({});
    repo.git(['commit', '-q', '--no-edit']);
    expectClean(repo);
    expect(repo.gitTensor(['fsck']).status).toBe(0);
  });

  it('`git tensor conflicts` after a partial resolve lists only the tensors still in conflict', () => {
    const repo = makeRepo();
    fineTuned(repo, denseOurs, denseTheirs);
    merge(repo);
    repo.gitTensor(['resolve', FILE, '--tensor', 'model.embed_tokens.*', '--strategy', 'theirs'], { allowFail: true });
    expect(conflictsJson(repo).files[0]!.tensors.map((t) => t.tensor)).toEqual([Q, V]);
  });

  it('a last `resolve` without --tensor settles the rest and keeps the earlier choices', () => {
    const repo = makeRepo();
    fineTuned(repo, denseOurs, denseTheirs);
    merge(repo);
    repo.gitTensor(['resolve', FILE, '--tensor', 'model.embed_tokens.*', '--strategy', 'theirs'], { allowFail: true });
    const r = repo.gitTensor(['resolve', FILE, '--strategy', 'ours'], { allowFail: true });
    expect(r.status).toBe(0);
    expect(mismatches(repo.read(FILE), denseOurs, denseTheirs, (n) => (n === EMBED ? { name: 'theirs' } : { name: 'ours' }))).toEqual({});
  });

  it('`git merge --abort` forgets choices made for the aborted merge', () => {
    const repo = makeRepo();
    fineTuned(repo, denseOurs, denseTheirs);
    merge(repo);
    repo.gitTensor(['resolve', FILE, '--tensor', 'model.embed_tokens.*', '--strategy', 'theirs'], { allowFail: true });
    repo.git(['merge', '--abort']);

    // The same merge again: the embeddings were chosen in a merge that no longer exists.
    merge(repo);
    const r = repo.gitTensor(['resolve', FILE, '--tensor', '*.self_attn.*', '--strategy', 'ours'], { allowFail: true });
    expect(r.status, 'the embeddings are still in conflict').toBe(1);
    expect(unmerged(repo)).toBe(true);
  });

  it('resolve refuses a glob that names no tensor, and bad parameters, before touching anything', () => {
    const repo = makeRepo();
    fineTuned(repo, denseOurs, denseTheirs);
    merge(repo);
    const before = repo.read(FILE);
    const none = repo.gitTensor(['resolve', FILE, '--tensor', 'no.such.*', '--strategy', 'ours'], { allowFail: true });
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('--tensor "no.such.*" matches no tensor');
    const bad = repo.gitTensor(['resolve', FILE, '--strategy', 'ties', '--density', '7'], { allowFail: true });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/git tensor resolve: density must be in \(0, 1\]/);
    expect(unmerged(repo)).toBe(true);
    expect(repo.read(FILE).equals(before)).toBe(true);
    // Neither refused command left a choice behind: a full resolve with ours gives ours everywhere.
    repo.gitTensor(['resolve', FILE, '--strategy', 'ours']);
    expect(mismatches(repo.read(FILE), denseOurs, denseTheirs, () => ({ name: 'ours' }))).toEqual({});
  });
});

describe('structural conflicts and metadata', () => {
  const smallBase = base.slice(0, 3);
  const smallFile = toSafetensors(smallBase, META);

  function structural(ours: TensorInput[], theirs: TensorInput[], meta: { base?: object; ours?: object; theirs?: object } = {}): Repo {
    const repo = makeRepo();
    commitFineTunes(repo, {
      base: { [FILE]: meta.base ? toSafetensors(smallBase, meta.base as Record<string, string>) : smallFile },
      ours: { [FILE]: toSafetensors(ours, (meta.ours ?? META) as Record<string, string>) },
      theirs: { [FILE]: toSafetensors(theirs, (meta.theirs ?? META) as Record<string, string>) },
    });
    return repo;
  }

  function expectStructuralConflict(repo: Repo, name: string, reason: RegExp): void {
    const r = merge(repo);
    expect(r.status).not.toBe(0);
    expect(r.output).toContain(`CONFLICT (content): Merge conflict in ${FILE}`);
    expect(r.stderr).toMatch(new RegExp(`CONFLICT ${name.replace(/\./g, '\\.')}: ${reason.source}`));
    const rows = conflictsJson(repo).files[0]!.tensors;
    expect(rows.map((t) => t.tensor)).toEqual([name]);
    expect(rows[0]!.reason).toMatch(reason);
    // The working file stays a valid checkpoint (ours' side of the conflicting tensor).
    expect(readCheckpoint(repo.read(FILE)).tensors.size).toBeGreaterThan(0);
  }

  it('a tensor added by both sides with different content', () => {
    const ours = [...smallBase, floatTensor('lora_A.weight', 'F32', [8, 64], 'ours')];
    const theirs = [...smallBase, floatTensor('lora_A.weight', 'F32', [16, 64], 'theirs')];
    const repo = structural(ours, theirs);
    expectStructuralConflict(repo, 'lora_A.weight', /added by both sides with different content \(ours F32 \[8, 64\], theirs F32 \[16, 64\]\)/);
    repo.gitTensor(['resolve', FILE, '--tensor', 'lora_A.*', '--strategy', 'theirs']);
    expect(repo.read(FILE).equals(toSafetensors(theirs, META))).toBe(true);
  });

  it('a tensor modified by one side and deleted by the other', () => {
    const ours = withTensors(smallBase, [dense(Q, 'A')]);
    const theirs = smallBase.filter((t) => t.name !== Q);
    const repo = structural(ours, theirs);
    expectStructuralConflict(repo, Q, /modified by ours, deleted by theirs \(F32 \[128, 128\]\)/);
    repo.gitTensor(['resolve', FILE, '--strategy', 'theirs']);
    expect(repo.read(FILE).equals(toSafetensors(theirs, META))).toBe(true);
  });

  it('a tensor reshaped by one side (vocabulary resized) while the other changed its values', () => {
    const e = tensor(smallBase, EMBED);
    const grown = { ...e, shape: [260, 64], data: Buffer.concat([e.data, floatTensor('new', 'F32', [4, 64], 'tokens').data]) };
    const ours = withTensors(smallBase, [grown]);
    const theirs = withTensors(smallBase, [dense(EMBED, 'B')]);
    const repo = structural(ours, theirs);
    expectStructuralConflict(repo, EMBED, /dtype or shape changed: base F32 \[256, 64\], ours F32 \[260, 64\], theirs F32 \[256, 64\]/);
    const r = repo.gitTensor(['resolve', FILE, '--strategy', 'average'], { allowFail: true });
    expect(r.status, 'arithmetic cannot settle a shape conflict').toBe(1);
    repo.gitTensor(['resolve', FILE, '--strategy', 'ours']);
    expect(repo.read(FILE).equals(toSafetensors(ours, META))).toBe(true);
  });

  const sparseSmall = (side: 0 | 1) => withTensors(smallBase, [sparse(EMBED, side)]);
  const metaBase = { format: 'pt', training_step: '1000' };
  const metaOurs = { format: 'pt', training_step: '1500' };
  const metaTheirs = { format: 'pt', training_step: '1200', dataset: 'code' };

  it('a __metadata__ key changed differently on both sides is reported; other keys merge', () => {
    const repo = structural(sparseSmall(0), sparseSmall(1), { base: metaBase, ours: metaOurs, theirs: metaTheirs });
    const r = merge(repo);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('CONFLICT __metadata__ key "training_step": ours "1500", theirs "1200"');
    const report = conflictsJson(repo).files[0]!;
    expect(report.tensors).toEqual([]);
    expect(report.metadata).toEqual([{ key: 'training_step', base: '1000', ours: '1500', theirs: '1200' }]);
    // Tensors merged; the conflicting key keeps ours until resolved; theirs' new key is there.
    expect(readCheckpoint(repo.read(FILE)).metadata).toEqual({ format: 'pt', training_step: '1500', dataset: 'code' });
  });

  it('`git tensor resolve --strategy theirs` settles a __metadata__ conflict', () => {
    const repo = structural(sparseSmall(0), sparseSmall(1), { base: metaBase, ours: metaOurs, theirs: metaTheirs });
    merge(repo);
    const r = repo.gitTensor(['resolve', FILE, '--strategy', 'theirs'], { allowFail: true });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(readCheckpoint(repo.read(FILE)).metadata).toEqual({ format: 'pt', training_step: '1200', dataset: 'code' });
  });

  it('the merged pointer is what a fresh `git add` of the merged file gives (canonical pointers)', () => {
    const repo = makeRepo();
    fineTuned(repo, withTensors(base, [sparse(EMBED, 0)]), withTensors(base, [sparse(EMBED, 1), dense(NORM, 'B')]));
    expect(merge(repo).status).toBe(0);
    const committed = pointerAt(repo, 'HEAD', FILE);
    repo.write(FILE, Buffer.from(repo.read(FILE)));
    repo.git(['add', '--renormalize', FILE]);
    expect(repo.git(['cat-file', 'blob', `:${FILE}`]).stdout).toBe(committed);
  });
});
