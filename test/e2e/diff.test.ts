// A user asks git what changed in a model: `git diff`, `git show` and `git log -p` print the tensor
// table for a tracked checkpoint (through the diff driver and textconv that `git tensor install`
// configures), `--stat`/`--name-only` stay as they were, and `git tensor diff` / `git tensor log` give
// the same analysis with revisions, paths, --cached, --json and a tokenizer.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { addLowRank, addSparse, edit, gaussianModel, moveRows, rescale, tokenizerJson } from '../helpers/diff-models.js';
import { toSafetensors, type TensorInput } from '../helpers/models.js';
import { makeRepo, run, type Repo } from '../helpers/repo.js';

const Q = 'model.layers.1.self_attn.q_proj.weight';
const UP = 'model.layers.0.mlp.up_proj.weight';
const V = 'model.layers.0.self_attn.v_proj.weight';
const EMB = 'model.embed_tokens.weight';

function fineTuned(base: TensorInput[]): TensorInput[] {
  let m = edit(base, Q, (t) => addLowRank(t, 4));
  m = edit(m, UP, (t) => addSparse(t, 46).tensor);
  m = edit(m, V, (t) => rescale(t, 1.01));
  return edit(m, EMB, (t) => moveRows(t, [17, 42, 5]));
}

/** The table's row for a tensor, from any output (git's '+' prefix allowed). */
function row(out: string, name: string): string | undefined {
  return out.split('\n').find((l) => new RegExp(`^[+ ]?\\s+[!+~-]\\s+${name.replace(/\./g, '\\.')}\\s`).test(l));
}

function expectTable(out: string): void {
  expect(out).toMatch(/model\.safetensors: 4\/17 tensors changed/);
  expect(row(out, Q)).toMatch(/100%.*low-rank r=4 /);
  expect(row(out, UP)).toMatch(/1\.00%.*sparse 1\.0% of elements, scattered/);
  expect(row(out, V)).toMatch(/rescale x(1\.0100|0\.9901)/);
  expect(row(out, EMB)).toMatch(/sparse rows 3\/64/);
  expect(row(out, 'lm_head.weight')).toBeUndefined();
  expect(out).toMatch(/13 tensor\(s\) unchanged/);
}

describe('git diff, git show and git log -p print the table', () => {
  let repo: Repo;
  const packs = () => readdirSync(join(repo.dir, '.git', 'tensor', 'packs')).sort();
  const base = gaussianModel();
  const tuned = fineTuned(base);

  beforeAll(() => {
    repo = makeRepo({ scope: 'file' });
    repo.write('model.safetensors', toSafetensors(base, { format: 'pt' }));
    repo.write('tokenizer.json', tokenizerJson(64, { 17: 'Ġelection', 42: 'Ġballot', 5: 'vote' }));
    repo.commit(['model.safetensors', 'tokenizer.json'], 'base model');
    repo.write('model.safetensors', toSafetensors(tuned, { format: 'pt' }));
    repo.commit(['model.safetensors'], 'fine-tune');
  });

  it('install configures the diff driver and textconv', () => {
    expect(repo.git(['config', 'diff.tensor.command']).stdout.trim()).toBe('git-tensor diff-driver');
    expect(repo.git(['config', 'diff.tensor.textconv']).stdout.trim()).toBe('git-tensor textconv');
  });

  it('plain `git diff` of a working-tree change', () => {
    repo.write('model.safetensors', toSafetensors(base, { format: 'pt' }));
    try {
      const out = repo.git(['diff']).stdout;
      expect(out.split('\n')[0]).toBe('diff --tensor a/model.safetensors b/model.safetensors');
      expectTable(out);
      expect(row(out, V)).toMatch(/rescale x0\.9901/); // going back from the fine-tune
      expect(out).toMatch(/tokens: model\.embed_tokens\.weight rows moved most: " election" [^,]+, " ballot" [^,]+, "vote"/);
    } finally {
      repo.git(['checkout', '--', 'model.safetensors']);
    }
    expect(repo.git(['status', '--porcelain']).stdout).toBe('');
  });

  it('`git diff` of a working-tree change hashes it without storing anything; `git add` then stores it', () => {
    const third = edit(tuned, Q, (t) => rescale(t, 1.5));
    repo.write('model.safetensors', toSafetensors(third, { format: 'pt' }));
    const before = packs();
    try {
      const r = repo.git(['diff'], { env: { GIT_TENSOR_TRACE: '1' } });
      expect(r.stderr).toMatch(/clean model\.safetensors: ids only, nothing stored/);
      // git cleans the file twice in one `git diff`; the second time the first answer is reused
      expect(r.stderr).toMatch(/clean model\.safetensors: unchanged since this git diff hashed it, ids reused/);
      expect(row(r.stdout, Q)).toMatch(/rescale x1\.5000/);
      expect(packs()).toEqual(before);
      repo.git(['add', 'model.safetensors']);
      expect(packs().length).toBeGreaterThan(before.length);
      expect(repo.gitTensor(['fsck']).status).toBe(0);
    } finally {
      repo.git(['reset', '-q', '--', 'model.safetensors']);
      repo.git(['checkout', '--', 'model.safetensors']);
    }
    expect(repo.git(['status', '--porcelain']).stdout).toBe('');
  });

  it('`git status` of a working-tree change hashes it without storing anything', () => {
    const fourth = edit(tuned, Q, (t) => rescale(t, 0.5));
    repo.write('model.safetensors', toSafetensors(fourth, { format: 'pt' }));
    const before = packs();
    try {
      const r = repo.git(['status', '--porcelain'], { env: { GIT_TENSOR_TRACE: '1' } });
      expect(r.stdout).toBe(' M model.safetensors\n');
      expect(r.stderr).toMatch(/clean model\.safetensors: ids only, nothing stored \(git status compares/);
      expect(packs()).toEqual(before);
      // what `git add` then stores is what status hashed: the index entry matches the file
      repo.git(['add', 'model.safetensors']);
      expect(packs().length).toBeGreaterThan(before.length);
      expect(repo.git(['status', '--porcelain']).stdout).toBe('M  model.safetensors\n');
      expect(repo.git(['diff', '--quiet']).status).toBe(0);
    } finally {
      repo.git(['reset', '-q', '--', 'model.safetensors']);
      repo.git(['checkout', '--', 'model.safetensors']);
    }
    expect(repo.git(['status', '--porcelain']).stdout).toBe('');
  });

  it('`git diff <rev> <rev>`', () => {
    const out = repo.git(['diff', 'HEAD~1', 'HEAD']).stdout;
    expectTable(out);
    expect(row(out, V)).toMatch(/rescale x1\.0100/);
  });

  it('plain `git show`', () => {
    const out = repo.git(['show']).stdout;
    expect(out).toContain('diff --git a/model.safetensors b/model.safetensors');
    expectTable(out);
    // The table comes as added lines under the version header of textconv.
    expect(out).toMatch(/^\+model\.safetensors: 4\/17 tensors changed/m);
    expect(out).toMatch(/^-git-tensor checkpoint [0-9a-f]{10}: 17 tensors/m);
    expect(out).toMatch(/^\+ {2}tokens: .*" election"/m);
  });

  it('plain `git log -p`', () => {
    const out = repo.git(['log', '-p']).stdout;
    expectTable(out);
    // The first commit adds the checkpoint: one version, described by its header.
    expect(out).toMatch(/^\+git-tensor checkpoint [0-9a-f]{10}: 17 tensors, /m);
  });

  it('git diff/show/log -p do not smudge the checkpoint into temporary files; checkout and GIT_TENSOR_DIFF_SMUDGE=1 do', () => {
    const trace = { GIT_TENSOR_TRACE: '1' };
    const left = /git-tensor: smudge model\.safetensors: left as a pointer for git (diff|show|log)/;
    for (const args of [['diff', 'HEAD~1', 'HEAD'], ['-c', 'core.pager=cat', 'show', 'HEAD'], ['log', '-p', '-1']]) {
      const r = repo.git(args, { env: trace });
      expect(r.stderr).toMatch(left);
      expectTable(r.stdout);
    }
    const full = repo.git(['diff', 'HEAD~1', 'HEAD'], { env: { ...trace, GIT_TENSOR_DIFF_SMUDGE: '1' } });
    expect(full.stderr).not.toMatch(left);
    expectTable(full.stdout);
    // an external diff program gets the real files
    const external = repo.git(['diff', 'HEAD~1', 'HEAD'], { env: { ...trace, GIT_EXTERNAL_DIFF: 'true' } });
    expect(external.stderr).not.toMatch(left);
    repo.git(['checkout', 'HEAD~1', '--', 'model.safetensors'], { env: trace });
    try {
      expect(repo.read('model.safetensors').equals(toSafetensors(base, { format: 'pt' }))).toBe(true);
    } finally {
      repo.git(['checkout', 'HEAD', '--', 'model.safetensors']);
    }
  });

  it('`--stat`, `--numstat` and `--name-only` are untouched (they count pointer lines)', () => {
    expect(repo.git(['diff', '--name-only', 'HEAD~1', 'HEAD']).stdout).toBe('model.safetensors\n');
    expect(repo.git(['diff', '--numstat', 'HEAD~1', 'HEAD']).stdout).toBe('4\t4\tmodel.safetensors\n');
    expect(repo.git(['show', '--stat', '--format=']).stdout).toMatch(/model\.safetensors \| 8 \+\+\+\+----/);
    // --no-ext-diff --no-textconv gives back the plain pointer diff.
    const plain = repo.git(['diff', '--no-ext-diff', '--no-textconv', 'HEAD~1', 'HEAD']).stdout;
    expect(plain.split('\n').filter((l) => /^[-+]tensor /.test(l))).toHaveLength(8);
  });

  it('`git tensor diff` with zero, one and two revisions, A..B, paths and --cached', () => {
    expect(repo.gitTensor(['diff']).stdout).toMatch(/^no checkpoint changes between HEAD and worktree/);
    expectTable(repo.gitTensor(['diff', 'HEAD~1']).stdout);
    expectTable(repo.gitTensor(['diff', 'HEAD~1', 'HEAD']).stdout);
    expectTable(repo.gitTensor(['diff', 'HEAD~1..HEAD', '--', 'model.safetensors']).stdout);
    expectTable(repo.gitTensor(['diff', 'HEAD~1', 'HEAD', 'model.safetensors']).stdout);
    expect(repo.gitTensor(['diff', 'HEAD~1', 'HEAD', '--', 'other.safetensors']).stdout).toMatch(/^no checkpoint changes/);
    repo.write('model.safetensors', toSafetensors(base, { format: 'pt' }));
    try {
      expect(repo.gitTensor(['diff', '--cached']).stdout).toMatch(/^no checkpoint changes between HEAD and index/);
      expectTable(repo.gitTensor(['diff']).stdout);
      repo.git(['add', 'model.safetensors']);
      expectTable(repo.gitTensor(['diff', '--cached']).stdout);
      // Unlike `git diff`, no revision means HEAD vs the working tree: staging does not hide the change.
      expectTable(repo.gitTensor(['diff']).stdout);
      expect(repo.git(['diff']).stdout).toBe('');
    } finally {
      repo.git(['reset', '-q', 'HEAD', '--', 'model.safetensors']);
      repo.git(['checkout', '--', 'model.safetensors']);
    }
  });

  it('`--top` limits the rows', () => {
    const out = repo.gitTensor(['diff', 'HEAD~1', 'HEAD', '--top', '1']).stdout;
    expect(out.split('\n').filter((l) => /^ {2}! /.test(l))).toHaveLength(1);
    expect(out).toContain('... 3 more changed tensor(s)');
  });

  it('`--json` follows the documented schema', () => {
    const j = JSON.parse(repo.gitTensor(['diff', 'HEAD~1', 'HEAD', '--json']).stdout);
    expect(j).toMatchObject({ version: 1, old: 'HEAD~1', new: 'HEAD' });
    expect(j.files).toHaveLength(1);
    const f = j.files[0];
    expect(f.summary).toMatchObject({ tensors: 17, changed: 4, added: 0, removed: 0, unchanged: 13 });
    const by = (n: string) => f.tensors.find((t: { name: string }) => t.name === n);
    expect(by(Q)).toMatchObject({ status: 'changed', kind: 'low-rank', changed_fraction: 1, rank: { effective: 4 } });
    expect(by(UP)).toMatchObject({ kind: 'sparse', changed_elements: 46 });
    expect(by(V).rescale.factor).toBeCloseTo(1.01, 6);
    expect(by('lm_head.weight')).toMatchObject({ status: 'unchanged', kind: 'unchanged', rel_change: 0 });
    for (const t of f.tensors) for (const k of ['status', 'changed_fraction', 'rel_change', 'cosine', 'kind', 'rank']) expect(t).toHaveProperty(k);
    expect(f.tokens[0].top.map((m: { token: string }) => m.token)).toEqual(['Ġelection', 'Ġballot', 'vote']);
  });

  it('`git tensor log` prints one line per commit', () => {
    const lines = repo.gitTensor(['log']).stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^[0-9a-f]{7,} fine-tune {2}model\.safetensors: 4\/17 tensors changed, max rel \d\.\de-\d \(2 sparse, 1 low-rank, 1 rescale\)/);
    expect(lines[1]).toMatch(/^[0-9a-f]{7,} base model {2}model\.safetensors: added \(17 tensors\)$/);
    expect(repo.gitTensor(['log', 'model.safetensors', '-n', '1']).stdout.trim().split('\n')).toHaveLength(1);
    const j = JSON.parse(repo.gitTensor(['log', '--json']).stdout);
    expect(j.commits[0].files[0]).toMatchObject({ path: 'model.safetensors', changed: 4, kinds: { sparse: 2, 'low-rank': 1, rescale: 1 } });
  });

  it('an unknown revision is a usage error with a hint', () => {
    const r = repo.gitTensor(['diff', 'nope'], { allowFail: true });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown revision "nope"/);
    expect(r.stderr).toMatch(/^hint: /m);
  });

  it('the driver called as git calls it: unmerged path, missing objects (reported, exit 0 so git goes on)', () => {
    expect(repo.gitTensor(['diff-driver', 'model.safetensors']).stdout).toBe('* Unmerged path model.safetensors (see `git tensor conflicts`)\n');
    const [a, b] = ['HEAD~1', 'HEAD'].map((r) => repo.git(['rev-parse', `${r}:model.safetensors`]).stdout.trim());
    const args = ['diff-driver', 'model.safetensors', repo.path('old.tmp'), a!, '100644', repo.path('new.tmp'), b!, '100644'];
    expectTable(repo.gitTensor(args).stdout);
    // Without the store (moved away for one call), the objects are missing: said, with the next command.
    const moved = repo.path('.git/tensor-away');
    const r = run('sh', ['-c', `mv .git/tensor "${moved}" && git tensor ${args.map((x) => `'${x}'`).join(' ')}; s=$?; rm -rf .git/tensor; mv "${moved}" .git/tensor; exit $s`], repo.dir, repo.env);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^diff --tensor a\/model\.safetensors b\/model\.safetensors\ngit-tensor: cannot compare model\.safetensors: .*missing from the tensor store/);
    expect(r.stdout).toMatch(/^hint: .*git tensor fetch/m);
  });

  it('`diff` and `log` have --help', () => {
    expect(repo.gitTensor(['diff', '--help']).stdout).toMatch(/git tensor diff.*--cached.*--html.*--tokenizer/s);
    expect(repo.gitTensor(['log', '--help']).stdout).toMatch(/git tensor log/);
  });
});

describe('more git situations', () => {
  it('a LoRA merge into one layer, in a subfolder, with its tokenizer and a rename', () => {
    const repo = makeRepo();
    const base = gaussianModel({ seed: 'sub' });
    repo.write('ckpt/model.safetensors', toSafetensors(base));
    repo.commit(['ckpt/model.safetensors'], 'base');
    repo.write('ckpt/model.safetensors', toSafetensors(edit(base, Q, (t) => addLowRank(t, 2))));
    repo.commit(['ckpt/model.safetensors'], 'lora r=2 on layer 1 q_proj');
    const log = repo.gitTensor(['log']).stdout.split('\n')[0]!;
    expect(log).toMatch(/lora r=2 on layer 1 q_proj {2}ckpt\/model\.safetensors: 1\/17 tensors changed, max rel .* \(low-rank r=2\)$/);

    // A rename with a change: git passes the new path; the table still compares the two versions.
    repo.git(['mv', 'ckpt/model.safetensors', 'ckpt/renamed.safetensors']);
    repo.write('ckpt/renamed.safetensors', toSafetensors(edit(base, UP, (t) => rescale(t, 2))));
    repo.git(['add', '-A']);
    const out = repo.git(['diff', '--cached', '-M50%']).stdout;
    expect(out).toMatch(/^diff --tensor a\/ckpt\/model\.safetensors b\/ckpt\/renamed\.safetensors$/m);
    expect(row(out, UP)).toMatch(/rescale x2\.0000/);
  });

  it('a tokenizer given with --tokenizer', () => {
    const repo = makeRepo();
    const base = gaussianModel({ seed: 'tok' });
    repo.write('m.safetensors', toSafetensors(base));
    repo.commit(['m.safetensors'], 'base');
    repo.write('m.safetensors', toSafetensors(edit(base, 'lm_head.weight', (t) => moveRows(t, [3, 60]))));
    repo.write('../vocab.json', tokenizerJson(64, { 3: 'Ġpoll', 60: 'Ġvoter' }));
    const out = repo.gitTensor(['diff', '--tokenizer', repo.path('../vocab.json')]).stdout;
    expect(out).toMatch(/tokens: lm_head\.weight rows moved most: " poll" [^,]+, " voter"/);
    // Without it (no tokenizer.json in the repository), no token view.
    expect(repo.gitTensor(['diff']).stdout).not.toMatch(/tokens:/);
  });

  it('added and deleted checkpoints', () => {
    const repo = makeRepo();
    repo.write('a.safetensors', toSafetensors(gaussianModel({ seed: 'a' })));
    repo.commit(['a.safetensors'], 'add a');
    repo.git(['rm', '-q', 'a.safetensors']);
    repo.write('b.safetensors', toSafetensors(gaussianModel({ seed: 'b', layers: 1 })));
    repo.git(['add', 'b.safetensors']);
    repo.git(['commit', '-q', '-m', 'replace a by b']);
    const out = repo.git(['diff', 'HEAD~1', 'HEAD']).stdout;
    expect(out).toMatch(/^a\.safetensors: deleted checkpoint \(17 tensors, /m);
    expect(out).toMatch(/^b\.safetensors: new checkpoint, 10 tensors, /m);
    const show = repo.git(['show']).stdout;
    expect(show).toMatch(/^-git-tensor checkpoint [0-9a-f]{10}: 17 tensors/m);
    expect(show).toMatch(/^\+git-tensor checkpoint [0-9a-f]{10}: 10 tensors/m);
    // A lone side never pairs with the next file's version.
    expect(show).not.toMatch(/tensors changed/);
  });
});
