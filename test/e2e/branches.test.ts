// A user keeps checkpoint versions on branches and moves between them with the git commands they already
// use (switch, stash, rebase, cherry-pick); every version comes back exactly, and a new version that
// changes one tensor costs about that tensor in the store.

import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dataBytes, makeTensor, modifyRows, replaceTensors, tinyModel, toSafetensors, type TensorInput } from '../helpers/models.js';
import { makeRepo, pointerAt, pointerTensors, type Repo } from '../helpers/repo.js';

function expectFile(repo: Repo, path: string, expected: Buffer, when: string): void {
  const actual = repo.read(path);
  expect(actual.equals(expected), `${path} ${when}: ${actual.length} bytes, expected ${expected.length} (contents differ)`).toBe(true);
}

function expectClean(repo: Repo): void {
  expect(repo.git(['status', '--porcelain']).stdout).toBe('');
}

const v1Tensors = tinyModel({ seed: 'base', layers: 2, hidden: 32 });
const v1 = toSafetensors(v1Tensors, { format: 'pt' });
const v2 = toSafetensors(modifyRows(replaceTensors(v1Tensors, ['lm_head.weight']), 'model.layers.1.mlp.up_proj.weight', [0, 5]), { format: 'pt' });

describe('branches', () => {
  it('`git switch` between two versions gives each one back exactly, every time', () => {
    const repo = makeRepo();
    repo.write('model.safetensors', v1);
    repo.commit(['model.safetensors'], 'v1');
    repo.git(['switch', '-q', '-c', 'finetune']);
    repo.write('model.safetensors', v2);
    repo.commit(['model.safetensors'], 'v2');

    for (let round = 0; round < 2; round++) {
      repo.git(['switch', '-q', 'main']);
      expectFile(repo, 'model.safetensors', v1, `on main (round ${round})`);
      expectClean(repo);
      repo.git(['switch', '-q', 'finetune']);
      expectFile(repo, 'model.safetensors', v2, `on finetune (round ${round})`);
      expectClean(repo);
    }
    // The two pointers differ exactly in the tensors that changed.
    const a = pointerTensors(pointerAt(repo, 'main', 'model.safetensors'));
    const b = pointerTensors(pointerAt(repo, 'finetune', 'model.safetensors'));
    const changed = a.filter((t, k) => t.id !== b[k]!.id).map((t) => t.name).sort();
    expect(changed).toEqual(['lm_head.weight', 'model.layers.1.mlp.up_proj.weight']);
  });

  it('`git stash` puts the committed checkpoint back and `stash pop` restores the modified one', () => {
    const repo = makeRepo();
    repo.write('model.safetensors', v1);
    repo.commit(['model.safetensors'], 'v1');
    repo.write('model.safetensors', v2);
    expect(repo.git(['status', '--porcelain']).stdout).toBe(' M model.safetensors\n');

    repo.git(['stash', '-q']);
    expectFile(repo, 'model.safetensors', v1, 'after stash');
    expectClean(repo);

    repo.git(['stash', 'pop', '-q']);
    expectFile(repo, 'model.safetensors', v2, 'after stash pop');
    expect(repo.git(['status', '--porcelain']).stdout).toBe(' M model.safetensors\n');
    repo.commit(['model.safetensors'], 'v2');
    repo.remove('model.safetensors');
    repo.git(['checkout', '--', 'model.safetensors']);
    expectFile(repo, 'model.safetensors', v2, 'after committing the popped version');
  });

  it('`git rebase` replays a model commit onto a branch that changed another checkpoint', () => {
    const repo = makeRepo();
    const encoder1 = toSafetensors(tinyModel({ seed: 'encoder' }));
    const encoder2 = toSafetensors(replaceTensors(tinyModel({ seed: 'encoder' }), ['model.norm.weight']));
    repo.write('model.safetensors', v1);
    repo.write('encoder.safetensors', encoder1);
    repo.commit(['.'], 'base');

    repo.git(['switch', '-q', '-c', 'feature']);
    repo.write('model.safetensors', v2);
    repo.commit(['model.safetensors'], 'fine-tune the model');

    repo.git(['switch', '-q', 'main']);
    repo.write('encoder.safetensors', encoder2);
    repo.commit(['encoder.safetensors'], 'update the encoder');

    repo.git(['switch', '-q', 'feature']);
    repo.git(['rebase', '-q', 'main']);
    expect(repo.git(['log', '--format=%s', '-3']).stdout.trim().split('\n')).toEqual(['fine-tune the model', 'update the encoder', 'base']);
    expectFile(repo, 'model.safetensors', v2, 'after rebase');
    expectFile(repo, 'encoder.safetensors', encoder2, 'after rebase');
    expectClean(repo);
    expect(repo.gitTensor(['fsck']).status).toBe(0);
  });

  it('`git rebase` of a branch that changed the same checkpoint, when main did not', () => {
    const repo = makeRepo();
    repo.write('model.safetensors', v1);
    repo.commit(['model.safetensors'], 'v1');
    repo.git(['switch', '-q', '-c', 'feature']);
    repo.write('model.safetensors', v2);
    repo.commit(['model.safetensors'], 'v2');
    repo.git(['switch', '-q', 'main']);
    repo.write('README.md', 'a model\n');
    repo.commit(['README.md'], 'readme');

    repo.git(['rebase', '-q', 'main', 'feature']);
    expectFile(repo, 'model.safetensors', v2, 'after rebase');
    expect(repo.read('README.md').toString()).toBe('a model\n');
    expectClean(repo);
  });

  it('`git cherry-pick` of a model commit onto another branch', () => {
    const repo = makeRepo();
    repo.write('model.safetensors', v1);
    repo.commit(['model.safetensors'], 'v1');
    repo.git(['switch', '-q', '-c', 'experiments']);
    repo.write('model.safetensors', v2);
    repo.commit(['model.safetensors'], 'good fine-tune');
    const good = repo.git(['rev-parse', 'HEAD']).stdout.trim();
    repo.write('probe.safetensors', toSafetensors([makeTensor('probe', 'F16', [8, 8])]));
    repo.commit(['probe.safetensors'], 'probe (not wanted on main)');

    repo.git(['switch', '-q', 'main']);
    repo.write('adapter.safetensors', toSafetensors(tinyModel({ seed: 'adapter', layers: 1 })));
    repo.commit(['adapter.safetensors'], 'adapter');
    repo.git(['cherry-pick', good]);

    expectFile(repo, 'model.safetensors', v2, 'after cherry-pick');
    expect(repo.exists('probe.safetensors')).toBe(false);
    expect(pointerAt(repo, 'HEAD', 'model.safetensors')).toBe(pointerAt(repo, good, 'model.safetensors'));
    expectClean(repo);
  });
});

describe('older versions and worktrees', () => {
  it('`git restore --source` brings back an older version next to the current one', () => {
    const repo = makeRepo();
    repo.write('model.safetensors', v1);
    repo.commit(['model.safetensors'], 'v1');
    repo.write('model.safetensors', v2);
    repo.commit(['model.safetensors'], 'v2');
    repo.git(['restore', '--source=HEAD~1', '--', 'model.safetensors']);
    expectFile(repo, 'model.safetensors', v1, 'after restore --source=HEAD~1');
    expect(repo.git(['status', '--porcelain']).stdout).toBe(' M model.safetensors\n');
    repo.git(['reset', '-q', '--hard']);
    expectFile(repo, 'model.safetensors', v2, 'after reset --hard');
    expectClean(repo);
  });

  it('a linked worktree shares the store: its branch checks out without copying objects', () => {
    const repo = makeRepo();
    repo.write('model.safetensors', v1);
    repo.commit(['model.safetensors'], 'v1');
    repo.git(['switch', '-q', '-c', 'finetune']);
    repo.write('model.safetensors', v2);
    repo.commit(['model.safetensors'], 'v2');
    repo.git(['switch', '-q', 'main']);
    const packs = repo.packFiles();

    const wt = join(repo.root, 'wt');
    repo.git(['worktree', 'add', '-q', wt, 'finetune']);
    expect(readFileSync(join(wt, 'model.safetensors')).equals(v2)).toBe(true);
    expect(repo.packFiles()).toEqual(packs);

    // A version committed from the worktree is readable from the main checkout.
    const v3 = toSafetensors(replaceTensors(v1Tensors, ['model.norm.weight'], 'v3'), { format: 'pt' });
    writeFileSync(join(wt, 'model.safetensors'), v3);
    repo.git(['-C', wt, 'commit', '-q', '-am', 'v3']);
    repo.git(['switch', '-q', '--detach', 'finetune']);
    expectFile(repo, 'model.safetensors', v3, 'committed in the worktree, checked out in the main tree');
    expect(repo.gitTensor(['fsck']).status).toBe(0);
  });

  it('two `git add`s running at once in two worktrees both succeed and the store stays valid', async () => {
    const repo = makeRepo();
    const wt = join(repo.root, 'wt');
    repo.git(['worktree', 'add', '-q', '-b', 'other', wt]);
    const a = toSafetensors(tinyModel({ seed: 'concurrent-a', layers: 4, hidden: 128 }));
    const b = toSafetensors(tinyModel({ seed: 'concurrent-b', layers: 4, hidden: 128 }));
    repo.write('a.safetensors', a);
    writeFileSync(join(wt, 'b.safetensors'), b);
    const add = (cwd: string, file: string) => new Promise<number | null>((resolve) => {
      const child = spawn('git', ['add', file], { cwd, env: repo.env, stdio: 'ignore' });
      child.on('exit', (code) => resolve(code));
    });
    expect(await Promise.all([add(repo.dir, 'a.safetensors'), add(wt, 'b.safetensors')])).toEqual([0, 0]);
    repo.git(['commit', '-q', '-m', 'a']);
    repo.git(['-C', wt, 'commit', '-q', '-m', 'b']);
    expect(repo.gitTensor(['fsck']).status).toBe(0);
    repo.git(['merge', '-q', 'other']);
    repo.remove('a.safetensors');
    repo.remove('b.safetensors');
    repo.git(['checkout', '--', '.']);
    expectFile(repo, 'a.safetensors', a, 'after concurrent add');
    expectFile(repo, 'b.safetensors', b, 'after concurrent add');
  });
});

describe('deduplication across versions', () => {
  /** Eight 256 KiB tensors: big enough that the store's fixed costs are small next to one of them. */
  function bigModel(): TensorInput[] {
    return Array.from({ length: 8 }, (_, k) => makeTensor(`layers.${k}.weight`, 'F32', [256, 256], `dedup/${k}`));
  }
  const SLACK = 64 * 1024;

  it('a second version with one tensor changed grows the store by about that tensor', () => {
    const repo = makeRepo();
    const tensors = bigModel();
    repo.write('model.safetensors', toSafetensors(tensors));
    repo.commit(['model.safetensors'], 'v1');
    const before = repo.packBytes();
    expect(before).toBeGreaterThanOrEqual(dataBytes(tensors));

    const v2Tensors = replaceTensors(tensors, ['layers.3.weight']);
    repo.write('model.safetensors', toSafetensors(v2Tensors));
    repo.commit(['model.safetensors'], 'v2');
    const growth = repo.packBytes() - before;
    const tensorBytes = 256 * 256 * 4;
    expect(growth).toBeGreaterThanOrEqual(tensorBytes * 0.9);
    expect(growth).toBeLessThanOrEqual(tensorBytes + SLACK);
  });

  it('a version with a few rows changed grows the store by much less than the tensor', () => {
    const repo = makeRepo();
    const tensors = [makeTensor('embed.weight', 'F32', [1024, 256], 'rows/embed'), makeTensor('head.weight', 'F32', [256, 256], 'rows/head')];
    repo.write('model.safetensors', toSafetensors(tensors));
    repo.commit(['model.safetensors'], 'v1');
    const before = repo.packBytes();

    repo.write('model.safetensors', toSafetensors(modifyRows(tensors, 'embed.weight', [7, 500])));
    repo.commit(['model.safetensors'], 'v2: two embedding rows');
    const growth = repo.packBytes() - before;
    const tensorBytes = 1024 * 256 * 4;
    expect(growth).toBeGreaterThan(0);
    expect(growth).toBeLessThan(tensorBytes / 4);
  });

  it('committing the same checkpoint under a second name stores nothing new', () => {
    const repo = makeRepo();
    const bytes = toSafetensors(bigModel());
    repo.write('model.safetensors', bytes);
    repo.commit(['model.safetensors'], 'v1');
    const before = repo.packBytes();
    repo.write('backup/model.safetensors', bytes);
    repo.commit(['backup/model.safetensors'], 'copy');
    expect(repo.packBytes() - before).toBeLessThan(SLACK);
  });
});
