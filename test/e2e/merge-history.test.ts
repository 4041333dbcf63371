// The other git commands that merge: rebase, cherry-pick and revert go through the same merge driver as
// `git merge` and must give the exact union of non-overlapping edits; octopus merges (which do NOT use
// merge drivers), sharded checkpoints, and a merge whose driver dies half-way, which must leave the
// repository as it was once the merge is aborted.

import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commitFineTunes, disjointIndices, editValues, floatTensor, withTensors } from '../helpers/merge-models.js';
import { Prng, shard, toSafetensors, type TensorInput } from '../helpers/models.js';
import { makeRepo, pointerAt, pointerTensors, type Repo } from '../helpers/repo.js';

const FILE = 'model.safetensors';
const META = { format: 'pt' };
const EMBED = 'model.embed_tokens.weight';
const UP = 'model.layers.0.mlp.up_proj.weight';
const NORM = 'model.norm.weight';

const base: TensorInput[] = [
  floatTensor(EMBED, 'F32', [128, 64], 'history'),
  floatTensor(UP, 'BF16', [128, 64], 'history'),
  floatTensor(NORM, 'F32', [64], 'history'),
];
const baseFile = toSafetensors(base, META);
const tensor = (list: readonly TensorInput[], name: string) => list.find((t) => t.name === name)!;
const n = (t: TensorInput) => t.shape.reduce((a, b) => a * b, 1);

/** Three disjoint 1% masks per tensor: edits 0, 1 and 2 never touch the same element. */
const masks = (t: TensorInput) => disjointIndices(n(t), Math.ceil(0.01 * n(t)), 3, `history/${t.name}`);
/** The model with edits `k...` applied to EMBED and UP (each edit: its own elements, its own deltas). */
function edited(...ks: number[]): TensorInput[] {
  return withTensors(base, [EMBED, UP].map((name) => ks.reduce((t, k) => editValues(t, `edit-${k}`, { indices: masks(t)[k] }), tensor(base, name))));
}
const file = (ts: TensorInput[]) => toSafetensors(ts, META);

function expectFile(repo: Repo, path: string, expected: Buffer, when: string): void {
  expect(repo.read(path).equals(expected), `${path} ${when}`).toBe(true);
}
function expectClean(repo: Repo): void {
  expect(repo.git(['status', '--porcelain']).stdout).toBe('');
}

describe('rebase, cherry-pick, stash and revert merge checkpoints through the driver', () => {
  it('`git rebase` of a fine-tune onto a branch that changed other elements of the same tensors: exact union', () => {
    const repo = makeRepo();
    commitFineTunes(repo, { base: { [FILE]: baseFile }, ours: { [FILE]: file(edited(0)) }, theirs: { [FILE]: file(edited(1)) } });
    // task-b is rebased onto main: each of its commits is replayed with a three-way merge of the checkpoint.
    const r = repo.git(['rebase', 'main', 'task-b'], { allowFail: true });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toContain('merged exactly by disjoint union');
    expect(repo.git(['log', '--format=%s', '-3']).stdout.trim().split('\n')).toEqual(['fine-tune for task B', 'fine-tune for task A', 'base model']);
    expectFile(repo, FILE, file(edited(0, 1)), 'after rebase');
    expectClean(repo);
    expect(repo.gitTensor(['fsck']).status).toBe(0);
  });

  it('`git cherry-pick` of a model commit onto a branch that changed other elements: exact union', () => {
    const repo = makeRepo();
    commitFineTunes(repo, { base: { [FILE]: baseFile }, ours: { [FILE]: file(edited(0)) }, theirs: { [FILE]: file(edited(1)) } });
    repo.git(['switch', '-q', 'task-b']);
    repo.write('notes.txt', 'not wanted on main\n');
    repo.commit(['notes.txt'], 'notes');
    repo.git(['switch', '-q', 'main']);
    const pick = repo.git(['cherry-pick', 'task-b~1'], { allowFail: true });
    expect(pick.status, pick.stdout + pick.stderr).toBe(0);
    expectFile(repo, FILE, file(edited(0, 1)), 'after cherry-pick');
    expect(repo.exists('notes.txt')).toBe(false);
    expectClean(repo);
  });

  it('`git stash pop` onto a commit that changed other elements of the same tensors: exact union', () => {
    const repo = makeRepo();
    repo.write(FILE, baseFile);
    repo.commit([FILE], 'base');
    repo.write(FILE, file(edited(0))); // work in progress
    repo.git(['stash', '-q']);
    repo.write(FILE, file(edited(1)));
    repo.commit([FILE], 'someone else\'s fine-tune');
    const r = repo.git(['stash', 'pop'], { allowFail: true });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expectFile(repo, FILE, file(edited(0, 1)), 'after stash pop');
    expect(repo.git(['status', '--porcelain']).stdout).toBe(` M ${FILE}\n`);
  });

  it('`git revert` of the last model commit restores the previous bytes', () => {
    const repo = makeRepo();
    repo.write(FILE, baseFile);
    repo.commit([FILE], 'base');
    repo.write(FILE, file(edited(0)));
    repo.commit([FILE], 'bad fine-tune');
    repo.git(['revert', '--no-edit', 'HEAD']);
    expectFile(repo, FILE, baseFile, 'after revert');
    expect(pointerAt(repo, 'HEAD', FILE)).toBe(pointerAt(repo, 'HEAD~2', FILE));
    expectClean(repo);
  });

  it('`git revert` of an older model commit undoes only its elements, keeping later edits of the same tensors', () => {
    const repo = makeRepo();
    repo.write(FILE, baseFile);
    repo.commit([FILE], 'base');
    repo.write(FILE, file(edited(0)));
    repo.commit([FILE], 'edit 0 (to be reverted)');
    repo.write(FILE, file(edited(0, 1)));
    repo.commit([FILE], 'edit 1');
    const r = repo.git(['revert', '--no-edit', 'HEAD~1'], { allowFail: true });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expectFile(repo, FILE, file(edited(1)), 'after reverting edit 0');
    expectClean(repo);
  });
});

describe('octopus merges', () => {
  it('three branches each adding an adapter file merge in one octopus commit', () => {
    const repo = makeRepo();
    repo.write(FILE, baseFile);
    repo.commit([FILE], 'base');
    const adapters = ['math', 'code', 'chat'].map((task) => ({
      task,
      path: `adapters/${task}.safetensors`,
      bytes: toSafetensors([floatTensor('lora_A.weight', 'F32', [8, 64], task), floatTensor('lora_B.weight', 'BF16', [64, 8], task)], META),
    }));
    for (const a of adapters) {
      repo.git(['switch', '-q', '-c', a.task, 'main']);
      repo.write(a.path, a.bytes);
      repo.commit([a.path], `adapter for ${a.task}`);
    }
    repo.git(['switch', '-q', 'main']);
    const r = repo.git(['merge', '--no-edit', ...adapters.map((a) => a.task)], { allowFail: true });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("Merge made by the 'octopus' strategy");
    expect(repo.git(['rev-list', '--parents', '-1', 'HEAD']).stdout.trim().split(' ')).toHaveLength(4);
    for (const a of adapters) expectFile(repo, a.path, a.bytes, 'after the octopus merge');
    expectFile(repo, FILE, baseFile, 'after the octopus merge');
    expectClean(repo);
  });

  it('three branches changing different tensors of one checkpoint: octopus merges the pointer TEXT, not through the driver', () => {
    // git's octopus strategy merges each file with git-merge-one-file, which calls `git merge-file` on
    // the committed blobs (our pointers) and never runs merge drivers. Pointers hold one line per tensor,
    // so changes to different, non-adjacent tensors merge line by line into the right pointer. But
    // merge-one-file also writes that merged blob straight into the working tree (no smudge filter),
    // so the working file is the pointer text until it is checked out again. Tensors on adjacent pointer
    // lines make merge-file conflict, and octopus then gives up, leaving the repository as it was.
    const names = ['t0', 't1', 't2', 't3', 't4', 't5'];
    const flat = names.map((name) => floatTensor(name, 'F32', [32, 32], 'octopus'));
    const changing = (idx: number[]) => withTensors(flat, idx.map((k) => editValues(flat[k]!, 'octopus-edit')));
    const repo = makeRepo();
    repo.write(FILE, toSafetensors(flat, META));
    repo.commit([FILE], 'base');
    for (const k of [0, 2, 4]) {
      repo.git(['switch', '-q', '-c', `train-t${k}`, 'main']);
      repo.write(FILE, toSafetensors(changing([k]), META));
      repo.commit([FILE], `train t${k}`);
    }
    repo.git(['switch', '-q', 'main']);
    const expected = toSafetensors(changing([0, 2, 4]), META);

    const r = repo.git(['merge', '--no-edit', 'train-t0', 'train-t2', 'train-t4'], { allowFail: true });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("Merge made by the 'octopus' strategy");
    expect(r.stderr).not.toContain('git-tensor: merged'); // the driver never ran
    // The commit is right: its pointer is exactly what committing the expected checkpoint gives.
    const committed = pointerTensors(pointerAt(repo, 'HEAD', FILE));
    expect(committed.map((t) => t.id)).toEqual(pointerTensors(pointerAt(repo, 'train-t0', FILE)).map((t, k) =>
      [0, 2, 4].includes(k) ? pointerTensors(pointerAt(repo, `train-t${k}`, FILE))[k]!.id : t.id));
    // ...but the working file is the pointer text, and git sees nothing to do about it.
    expect(repo.read(FILE).toString('utf8')).toBe(pointerAt(repo, 'HEAD', FILE));
    expectClean(repo);
    // Checking the file out again gives the merged checkpoint, byte for byte.
    repo.remove(FILE);
    repo.git(['checkout', '--', FILE]);
    expectFile(repo, FILE, expected, 'after checking the octopus result out again');
    expect(repo.gitTensor(['fsck']).status).toBe(0);
  });

  it('octopus refuses tensors on adjacent pointer lines and leaves the repository as it was; merging one branch at a time works', () => {
    const names = ['t0', 't1', 't2'];
    const flat = names.map((name) => floatTensor(name, 'F32', [32, 32], 'octopus'));
    const changing = (idx: number[]) => withTensors(flat, idx.map((k) => editValues(flat[k]!, 'octopus-edit')));
    const repo = makeRepo();
    repo.write(FILE, toSafetensors(flat, META));
    repo.commit([FILE], 'base');
    for (const k of [0, 1, 2]) {
      repo.git(['switch', '-q', '-c', `train-t${k}`, 'main']);
      repo.write(FILE, toSafetensors(changing([k]), META));
      repo.commit([FILE], `train t${k}`);
    }
    repo.git(['switch', '-q', 'main']);
    const head = repo.git(['rev-parse', 'HEAD']).stdout;
    const r = repo.git(['merge', '--no-edit', 'train-t0', 'train-t1', 'train-t2'], { allowFail: true });
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('Should not be doing an octopus');
    expect(repo.git(['rev-parse', 'HEAD']).stdout).toBe(head);
    expectClean(repo);
    expectFile(repo, FILE, toSafetensors(flat, META), 'after the refused octopus');

    for (const k of [0, 1, 2]) {
      const m = repo.git(['merge', '--no-edit', `train-t${k}`], { allowFail: true });
      expect(m.status, m.stdout + m.stderr).toBe(0);
    }
    expectFile(repo, FILE, toSafetensors(changing([0, 1, 2]), META), 'after merging the branches one at a time');
    expectClean(repo);
  });
});

describe('sharded checkpoints', () => {
  it('two shards, each changed on a different branch (one also sparsely on both), merge exactly', () => {
    const groups = [[floatTensor(EMBED, 'F32', [128, 64], 'shards'), floatTensor(NORM, 'F32', [64], 'shards')], [floatTensor(UP, 'BF16', [128, 64], 'shards')]];
    const sharded = (g: TensorInput[][]) => shard(g);
    const write = (s: ReturnType<typeof shard>) => Object.fromEntries([...s.shards, ['model.safetensors.index.json', s.indexJson]]);
    const [e, nrm] = groups[0]!;
    const up = groups[1]![0]!;
    const m = disjointIndices(n(e!), 40, 2, 'shard-masks');
    const ours = [[editValues(e!, 'ours', { indices: m[0] }), nrm!], [editValues(up, 'ours')]];
    const theirs = [[editValues(e!, 'theirs', { indices: m[1] }), editValues(nrm!, 'theirs')], [up]];
    const repo = makeRepo();
    commitFineTunes(repo, { base: write(sharded(groups)), ours: write(sharded(ours)), theirs: write(sharded(theirs)) });
    const r = repo.git(['merge', '--no-edit', 'task-b'], { allowFail: true });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const expected = sharded([[editValues(editValues(e!, 'ours', { indices: m[0] }), 'theirs', { indices: m[1] }), editValues(nrm!, 'theirs')], [editValues(up, 'ours')]]);
    for (const [name, bytes] of expected.shards) expectFile(repo, name, bytes, 'after merging the shards');
    expect(repo.read('model.safetensors.index.json').toString()).toBe(expected.indexJson);
    expectClean(repo);
  });
});

describe('a merge whose driver dies', () => {
  /** A dense fine-tune of a few MiB on both sides, made fast (Float32Array, not the oracle's encoder). */
  function bigDense(seed: string, from?: Buffer): Buffer {
    const prng = new Prng(seed);
    const count = 1 << 20; // 4 MiB per tensor
    const tensors: TensorInput[] = [0, 1].map((k) => {
      const v = new Float32Array(count);
      const src = from ? new Float32Array(readCheckpointData(from, k).buffer) : null;
      for (let j = 0; j < count; j++) {
        const u = prng.nextU32() / 2 ** 32;
        v[j] = src ? src[j]! + (u < 0.5 ? -1e-3 : 1e-3) * (1 + u) : (0.25 + 0.75 * u) * (j & 1 ? -1 : 1);
      }
      return { name: `layers.${k}.weight`, dtype: 'F32', shape: [1024, 1024], data: Buffer.from(v.buffer) };
    });
    return toSafetensors(tensors, META);
  }
  function readCheckpointData(file: Buffer, k: number): Uint8Array {
    const headerLength = Number(file.readBigUInt64LE(0));
    const begin = 8 + headerLength + k * 4 * (1 << 20);
    return Uint8Array.prototype.slice.call(file, begin, begin + 4 * (1 << 20));
  }

  function script(repo: Repo, name: string, body: string): string {
    const path = join(repo.root, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  }

  function expectAsBefore(repo: Repo, head: string, oursFile: Buffer): void {
    expect(repo.git(['rev-parse', 'HEAD']).stdout).toBe(head);
    expectClean(repo);
    expectFile(repo, FILE, oursFile, 'after aborting the merge');
    const fsck = repo.gitTensor(['fsck'], { allowFail: true });
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);
  }

  it('a driver killed before it starts: git reports a conflict; `git merge --abort` restores everything', () => {
    const repo = makeRepo();
    commitFineTunes(repo, { base: { [FILE]: baseFile }, ours: { [FILE]: file(edited(0)) }, theirs: { [FILE]: file(edited(1)) } });
    const head = repo.git(['rev-parse', 'HEAD']).stdout;
    const killer = script(repo, 'kill-driver.sh', 'kill -9 $$');
    repo.git(['config', 'merge.tensor.driver', `${killer} %O %A %B %P`]);

    const r = repo.git(['merge', '--no-edit', 'task-b'], { allowFail: true });
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toContain(`CONFLICT (content): Merge conflict in ${FILE}`);
    expect(repo.git(['rev-parse', 'HEAD']).stdout).toBe(head);
    repo.git(['merge', '--abort']);
    expectAsBefore(repo, head, file(edited(0)));

    // With the real driver back, the same merge works.
    repo.gitTensor(['install']);
    expect(repo.git(['merge', '--no-edit', 'task-b']).status).toBe(0);
    expectFile(repo, FILE, file(edited(0, 1)), 'after merging with the real driver');
  });

  it('a driver SIGKILLed in the middle of merging a larger checkpoint leaves nothing behind after `git reset --merge`', () => {
    const repo = makeRepo();
    const baseBig = bigDense('big-base');
    const oursBig = bigDense('big-ours', baseBig);
    const theirsBig = bigDense('big-theirs', baseBig);
    commitFineTunes(repo, { base: { [FILE]: baseBig }, ours: { [FILE]: oursBig }, theirs: { [FILE]: theirsBig } });
    const head = repo.git(['rev-parse', 'HEAD']).stdout;
    const packsBefore = repo.packFiles();
    // Start the real driver, wait until it has begun writing merged objects (or 3 s), then SIGKILL it.
    // `killed` records whether it was still running: the kill really happened mid-merge.
    const killer = script(repo, 'kill-mid-merge.sh', [
      'git-tensor merge-driver "$@" &',
      'pid=$!',
      'i=0',
      'while [ $i -lt 300 ] && [ -z "$(ls -A .git/tensor/tmp 2>/dev/null)" ]; do sleep 0.01; i=$((i+1)); done',
      `kill -9 $pid; echo $? > ${join(repo.root, 'killed')}`,
      'wait $pid',
      'exit 137',
    ].join('\n'));
    repo.git(['config', 'merge.tensor.driver', `${killer} %O %A %B %P`]);

    const r = repo.git(['merge', '--no-edit', 'task-b'], { allowFail: true, env: { GIT_TENSOR_MERGE: 'ties' } });
    expect(r.status).not.toBe(0);
    expect(readFileSync(join(repo.root, 'killed'), 'utf8').trim(), 'the driver was still running when killed').toBe('0');
    expect(repo.git(['rev-parse', 'HEAD']).stdout).toBe(head);
    repo.git(['reset', '-q', '--merge']);
    expectAsBefore(repo, head, oursBig);
    expect(repo.packFiles(), 'no half-written pack became part of the store').toEqual(packsBefore);
    // Leftover temp files are allowed, but the store must still be usable: the real driver merges.
    repo.gitTensor(['install']);
    const again = repo.git(['merge', '--no-edit', 'task-b'], { allowFail: true, env: { GIT_TENSOR_MERGE: 'ours' } });
    expect(again.status, again.stdout + again.stderr).toBe(0);
    expectFile(repo, FILE, oursBig, 'merged with strategy ours (every element conflicts)');
    expect(readdirSync(join(repo.storeDir, 'packs')).length).toBeGreaterThanOrEqual(packsBefore.length);
  });
});
