// A sharded Hugging Face checkpoint is one model to git-tensor (docs/diff.md, "Sharded checkpoints"):
// `git tensor diff`, `git diff` and `git tensor log` list its tensors once, by name, whichever shard
// holds them; a tensor moved to another shard, or a resharding, is not a change; the index is checked
// against what the shards hold; and merges keep a modification made on one side to a tensor that the
// other side moved to another shard.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSafetensors } from '../../src/format/safetensors.js';
import { modifyRows, shard, tinyModel, toSafetensors, type TensorInput } from '../helpers/models.js';
import { makeRepo, pointerAt, pointerTensors, PROJECT_ROOT, type Repo } from '../helpers/repo.js';

const INDEX = 'model.safetensors.index.json';

/** 2 layers + embeddings + head: 17 tensors, BF16 like a released 7B checkpoint. */
function model(seed = 'shards'): TensorInput[] {
  return tinyModel({ seed, layers: 2, hidden: 32, dtype: 'BF16' });
}

/** Splits `tensors` into shards: `groups[k]` lists the name prefixes of shard k; the rest go to the last. */
function sharded(tensors: TensorInput[], groups: string[][]) {
  const parts: TensorInput[][] = groups.map(() => []);
  for (const t of tensors) {
    const k = groups.findIndex((g) => g.some((p) => t.name.startsWith(p)));
    parts[k < 0 ? groups.length - 1 : k]!.push(t);
  }
  return shard(parts);
}

function write(repo: Repo, ckpt: ReturnType<typeof shard>, opts: { removeOthers?: boolean } = {}): void {
  if (opts.removeOthers) for (const f of repo.git(['ls-files', '*.safetensors']).stdout.split('\n').filter(Boolean)) repo.remove(f);
  for (const [name, bytes] of ckpt.shards) repo.write(name, bytes);
  repo.write(INDEX, ckpt.indexJson);
}

const TWO = [['model.embed_tokens', 'model.layers.0.'], ['model.layers.1.', 'model.norm', 'lm_head']];
const THREE = [['model.embed_tokens'], ['model.layers.0.'], ['model.layers.1.', 'model.norm', 'lm_head']];

/** The tensor rows of a text report: `<st> <name>`. */
function rows(text: string): string[] {
  return text.split('\n').map((l) => /^\s+([!+\-~])\s+(\S+)\s/.exec(l)).filter((m): m is RegExpExecArray => !!m).map((m) => `${m[1]} ${m[2]}`);
}

describe('sharded checkpoints are one model', () => {
  it('git tensor diff: one table keyed by tensor name; a move between shards and a resharding are not changes', () => {
    const repo = makeRepo();
    const base = model();
    write(repo, sharded(base, TWO));
    repo.commit(['.'], 'base');

    // Fine-tune one tensor in each shard.
    let tuned = modifyRows(base, 'model.layers.0.self_attn.q_proj.weight', [1, 2]);
    tuned = modifyRows(tuned, 'lm_head.weight', [5]);
    write(repo, sharded(tuned, TWO));
    const out = repo.gitTensor(['diff']).stdout;
    expect(out).toContain(`${INDEX} (2 shards): 2/17 tensors changed`);
    expect(rows(out).sort()).toEqual(['! lm_head.weight', '! model.layers.0.self_attn.q_proj.weight']);
    // Shards are not reported on their own.
    expect(out).not.toMatch(/^model-0000\d-of-00002\.safetensors:/m);
    repo.commit(['.'], 'tune');

    // Move layer 1 into the first shard: same tensors, nothing changed.
    write(repo, sharded(tuned, [['model.embed_tokens', 'model.layers.'], ['model.norm', 'lm_head']]));
    const moved = repo.gitTensor(['diff']).stdout;
    expect(moved).toContain(`${INDEX} (2 shards): 0/17 tensors changed`);
    expect(rows(moved)).toEqual([]);
    expect(moved).toContain('moved from model-00002-of-00002.safetensors to model-00001-of-00002.safetensors: 7 tensor(s), all with the same values (model.layers.1.');
    repo.git(['checkout', '--', '.']);

    // Reshard 2 -> 3 (new file names, as save_pretrained writes them): no tensor change.
    write(repo, sharded(tuned, THREE), { removeOthers: true });
    repo.commit(['.'], 'reshard into 3');
    const reshard = repo.gitTensor(['diff', 'HEAD~1', 'HEAD']).stdout;
    expect(reshard).toContain(`${INDEX} (2 shards -> 3 shards): 0/17 tensors changed`);
    expect(rows(reshard)).toEqual([]);

    // JSON: the model is one file entry with its shard counts and moves.
    const json = JSON.parse(repo.gitTensor(['diff', 'HEAD~2', 'HEAD', '--json']).stdout) as { files: { path: string; summary: { changed: number; tensors: number }; shards: { old: number; new: number; moved: unknown[] } }[] };
    expect(json.files.map((f) => f.path)).toEqual([INDEX]);
    expect(json.files[0]!.summary).toMatchObject({ tensors: 17, changed: 2 });
    expect(json.files[0]!.shards).toMatchObject({ old: 2, new: 3 });
  });
});

describe('git diff (the diff driver, once per shard file)', () => {
  it('each shard lists the tensors it holds now; moved tensors are not removed or added', () => {
    const repo = makeRepo();
    const base = model();
    write(repo, sharded(base, TWO));
    repo.commit(['.'], 'base');
    // Layer 1 moves into the first shard, and one of its tensors is fine-tuned on the way.
    const tuned = modifyRows(base, 'model.layers.1.mlp.up_proj.weight', [0, 3]);
    write(repo, sharded(tuned, [['model.embed_tokens', 'model.layers.'], ['model.norm', 'lm_head']]));

    for (const args of [['diff'], ['diff', 'HEAD'], ['diff', '--cached']]) {
      if (args.includes('--cached')) repo.git(['add', '.']);
      const out = repo.git(args).stdout;
      const first = out.slice(out.indexOf('diff --tensor a/model-00001-of-00002.safetensors'), out.indexOf('diff --tensor a/model-00002-of-00002.safetensors'));
      const second = out.slice(out.indexOf('diff --tensor a/model-00002-of-00002.safetensors'));
      expect(first, args.join(' ')).toContain('model-00001-of-00002.safetensors (shard of model.safetensors.index.json): 1/15 tensors changed');
      expect(rows(first), args.join(' ')).toEqual(['! model.layers.1.mlp.up_proj.weight']);
      expect(first).toContain('moved from model-00002-of-00002.safetensors to model-00001-of-00002.safetensors: 7 tensor(s), 6 with the same values');
      // The second shard lost layer 1 to the first one: nothing removed, nothing changed.
      expect(second, args.join(' ')).toContain('model-00002-of-00002.safetensors (shard of model.safetensors.index.json): 0/2 tensors changed');
      expect(rows(second), args.join(' ')).toEqual([]);
    }
    repo.commit(['.'], 'move layer 1');
    const between = repo.git(['diff', 'HEAD~1', 'HEAD']).stdout;
    expect(rows(between)).toEqual(['! model.layers.1.mlp.up_proj.weight']);
  });

  it('where the driver cannot tell the sides (git diff --merge-base), the shard is compared alone, with a note', () => {
    const repo = makeRepo();
    const base = model();
    write(repo, sharded(base, TWO));
    repo.commit(['.'], 'base');
    repo.git(['branch', 'start']);
    write(repo, sharded(base, [['model.embed_tokens', 'model.layers.'], ['model.norm', 'lm_head']]));
    const out = repo.git(['diff', '--merge-base', 'start']).stdout;
    expect(out).toContain('note: shard of model.safetensors.index.json: git did not say which versions it compares');
    expect(out).toContain('`git tensor diff` compares the whole model');
  });

  it('a resharding 2 -> 3 shows no tensor change in any shard file', () => {
    const repo = makeRepo();
    const base = model();
    write(repo, sharded(base, TWO));
    repo.commit(['.'], 'base');
    write(repo, sharded(base, THREE), { removeOthers: true });
    repo.commit(['.'], 'reshard');
    // git pairs old and new shard files as renames by similarity; either way nothing changed.
    for (const args of [['diff', 'HEAD~1', 'HEAD'], ['diff', '--no-renames', 'HEAD~1', 'HEAD']]) {
      const out = repo.git(args).stdout;
      expect(rows(out), args.join(' ')).toEqual([]);
      expect(out, args.join(' ')).not.toMatch(/new checkpoint|deleted checkpoint/);
    }
    const out = repo.git(['diff', '--no-renames', 'HEAD~1', 'HEAD']).stdout;
    expect(out).toContain('model-00001-of-00003.safetensors (shard of model.safetensors.index.json): new shard, 0/1 tensors changed');
    expect(out).toContain('model-00001-of-00002.safetensors (shard of model.safetensors.index.json): shard removed, 0/0 tensors changed');
    expect(out).not.toMatch(/new checkpoint|deleted checkpoint/);
  });
});

describe('git tensor log', () => {
  it('lists per commit the model\'s changed tensors once, whichever shards changed', () => {
    const repo = makeRepo();
    const base = model();
    write(repo, sharded(base, TWO));
    repo.commit(['.'], 'base');
    let tuned = modifyRows(base, 'model.layers.0.self_attn.q_proj.weight', [1]);
    tuned = modifyRows(tuned, 'lm_head.weight', [2]);
    write(repo, sharded(tuned, TWO));
    repo.commit(['.'], 'tune two shards');
    write(repo, sharded(tuned, THREE), { removeOthers: true });
    repo.commit(['.'], 'reshard');

    const lines = repo.gitTensor(['log']).stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/ reshard  model\.safetensors\.index\.json \(2 -> 3 shards\): 0\/17 tensors changed$/);
    expect(lines[1]).toMatch(/ tune two shards  model\.safetensors\.index\.json \(2 shards\): 2\/17 tensors changed, max rel /);
    expect(lines[2]).toMatch(/ base  model\.safetensors\.index\.json \(2 shards\): added \(17 tensors\)$/);
    // No line names a shard on its own.
    expect(lines.join('\n')).not.toContain('model-0000');
    const json = JSON.parse(repo.gitTensor(['log', '--json']).stdout) as { commits: { files: { path: string; changed: number }[] }[] };
    expect(json.commits.map((c) => c.files.map((f) => `${f.path} ${f.changed}`))).toEqual([[`${INDEX} 0`], [`${INDEX} 2`], [`${INDEX} 17`]]);
  });
});

/** The index of `ckpt` with `edit` applied to its parsed JSON. */
function editIndex(ckpt: ReturnType<typeof shard>, edit: (index: { metadata: { total_size: number }; weight_map: Record<string, string> }) => void): string {
  const index = JSON.parse(ckpt.indexJson);
  edit(index);
  return JSON.stringify(index, null, 2) + '\n';
}

describe('the index is checked against the shards', () => {
  it('diff, fsck and probe name the index, the tensor and the next command; warnings do not fail fsck', () => {
    const repo = makeRepo();
    const ckpt = sharded(model(), TWO);
    write(repo, ckpt);
    repo.write('config.json', '{"architectures": ["LlamaForCausalLM"]}');
    repo.write('probes.jsonl', '{"id": "p", "prompt": "a"}\n');
    repo.commit(['.'], 'base');
    expect(repo.gitTensor(['fsck']).stdout).toContain('ok');

    // A wrong total_size is a warning: loaders only show it.
    repo.write(INDEX, editIndex(ckpt, (i) => { i.metadata.total_size += 2; }));
    repo.commit(['.'], 'total_size off by two');
    const warned = repo.gitTensor(['fsck']);
    expect(warned.status).toBe(0);
    expect(warned.stdout).toMatch(/warning: shard index model\.safetensors\.index\.json: .*total_size is \d+, but the mapped tensors hold \d+ bytes/);
    expect(repo.gitTensor(['diff', 'HEAD~1', 'HEAD']).stdout).toMatch(/warning: .*total_size/);

    // lm_head.weight mapped to the first shard, which does not hold it: an error everywhere.
    repo.write(INDEX, editIndex(ckpt, (i) => { i.weight_map['lm_head.weight'] = 'model-00001-of-00002.safetensors'; }));
    repo.commit(['.'], 'broken weight_map');
    const diff = repo.gitTensor(['diff', 'HEAD~1', 'HEAD']).stdout;
    expect(diff).toContain('error: model.safetensors.index.json maps tensor lm_head.weight to model-00001-of-00002.safetensors, which does not hold it (it is in model-00002-of-00002.safetensors)');
    expect(diff).toMatch(/hint: Make model\.safetensors\.index\.json's weight_map name each tensor's shard/);
    const fsck = repo.gitTensor(['fsck'], { allowFail: true });
    expect(fsck.status).toBe(3);
    expect(fsck.stdout).toContain('bad shard index model.safetensors.index.json: model.safetensors.index.json maps tensor lm_head.weight to model-00001-of-00002.safetensors');
    expect(fsck.stdout).toContain('hint: ');
    const probe = repo.gitTensor(['probe', '--probes', 'probes.jsonl'], { allowFail: true });
    expect(probe.status).toBe(3);
    expect(probe.stderr).toContain('maps tensor lm_head.weight to model-00001-of-00002.safetensors, which does not hold it');
    expect(probe.stderr).toContain('hint:');

    // A shard named but not committed, and a shard's tensor missing from weight_map.
    repo.write(INDEX, editIndex(ckpt, (i) => {
      i.weight_map['model.norm.weight'] = 'model-00003-of-00003.safetensors';
      delete i.weight_map['model.layers.0.input_layernorm.weight'];
    }));
    repo.commit(['.'], 'more damage');
    const more = repo.gitTensor(['fsck'], { allowFail: true });
    expect(more.status).toBe(3);
    expect(more.stdout).toContain('bad shard index model.safetensors.index.json: model.safetensors.index.json names shard model-00003-of-00003.safetensors, which is not there');
    expect(more.stdout).toContain('warning: shard index model.safetensors.index.json: tensor model.layers.0.input_layernorm.weight in model-00001-of-00002.safetensors is not in model.safetensors.index.json\'s weight_map');
    expect(more.stdout).toContain('hint: Add the missing shard(s) (`git add <shard>`)');
    const probeMissing = repo.gitTensor(['probe', '--probes', 'probes.jsonl'], { allowFail: true });
    expect(probeMissing.status).toBe(3);
    expect(probeMissing.stderr).toContain('names shard model-00003-of-00003.safetensors, which is not in the commit');
  });

  it('git diff of a changed index reports its problems under the shard that changed', () => {
    const repo = makeRepo();
    const base = model();
    const ckpt = sharded(base, TWO);
    write(repo, ckpt);
    repo.commit(['.'], 'base');
    const tuned = sharded(modifyRows(base, 'lm_head.weight', [1]), TWO);
    write(repo, tuned);
    repo.write(INDEX, editIndex(tuned, (i) => { i.weight_map['model.norm.weight'] = 'model-00001-of-00002.safetensors'; }));
    const out = repo.git(['diff']).stdout;
    expect(rows(out)).toEqual(['! lm_head.weight']);
    expect(out).toContain('error: model.safetensors.index.json maps tensor model.norm.weight to model-00001-of-00002.safetensors, which does not hold it');
  });
});

describe('git tensor probe of a sharded committed model', () => {
  const LLAMA = join(PROJECT_ROOT, 'test', 'fixtures', 'models', 'llama-tiny');

  it('gives the results of the same model in one file', () => {
    const single = readFileSync(join(LLAMA, 'model.safetensors'));
    const header = parseSafetensors(single);
    const dataStart = single.length - header.dataLength;
    const tensors = header.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: single.subarray(dataStart + t.begin, dataStart + t.end) }));
    const ckpt = shard([tensors.slice(0, 5), tensors.slice(5, 12), tensors.slice(12)]);
    const repo = makeRepo();
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) repo.write(f, readFileSync(join(LLAMA, f)));
    write(repo, ckpt);
    repo.write('probes.jsonl', '{"id": "capital", "prompt": "The capital of France is", "targets": [" Paris", " Rome"]}\n{"id": "story", "text": "Once upon a time there was a little dog."}\n');
    repo.commit(['.'], 'llama-tiny in 3 shards');
    repo.write('single/model.safetensors', single);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) repo.write(`single/${f}`, readFileSync(join(LLAMA, f)));

    const committed = JSON.parse(repo.gitTensor(['probe', 'HEAD', '--probes', 'probes.jsonl', '--json']).stdout);
    const onDisk = JSON.parse(repo.gitTensor(['probe', '--path', 'single/model.safetensors', '--probes', 'probes.jsonl', '--json']).stdout);
    expect(committed.versions[0].label).toBe(`HEAD:${INDEX}`);
    expect(committed.versions[0].probes).toEqual(onDisk.versions[0].probes);
    // The shards and index on disk, through --path, give the same numbers too.
    const sharded = JSON.parse(repo.gitTensor(['probe', '--path', INDEX, '--probes', 'probes.jsonl', '--json']).stdout);
    expect(sharded.versions[0].probes).toEqual(onDisk.versions[0].probes);
  });
});

describe('git merge of a sharded model (each shard file through the merge driver, the index as text)', () => {
  /** Commits base, then `theirs` on a branch and `ours` on the first branch; returns the merge's result. */
  function mergeOf(theirs: (repo: Repo) => void, ours: (repo: Repo) => void) {
    const repo = makeRepo();
    write(repo, sharded(model(), TWO));
    repo.commit(['.'], 'base');
    repo.git(['checkout', '-q', '-b', 'theirs']);
    theirs(repo);
    repo.commit(['.'], 'theirs');
    repo.git(['checkout', '-q', '-']);
    ours(repo);
    repo.commit(['.'], 'ours');
    return { repo, merge: repo.git(['merge', '--no-edit', 'theirs'], { allowFail: true }) };
  }
  /** file -> bytes of `tensor`, for every safetensors file in the working tree that holds it. */
  const copiesInWorktree = (repo: Repo, tensor: string) => {
    const out = new Map<string, Buffer>();
    for (const f of readdirSync(repo.dir).filter((n) => n.endsWith('.safetensors'))) {
      const bytes = repo.read(f);
      const h = parseSafetensors(bytes);
      const t = h.tensors.find((x) => x.name === tensor);
      if (t) out.set(f, bytes.subarray(bytes.length - h.dataLength + t.begin, bytes.length - h.dataLength + t.end));
    }
    return out;
  };
  const idIn = (repo: Repo, rev: string, file: string, tensor: string) =>
    pointerTensors(pointerAt(repo, rev, file)).find((t) => t.name === tensor)?.id;

  it('both sides fine-tune different tensors in different shards: clean, both changes kept', () => {
    const q0 = modifyRows(model(), 'model.layers.0.self_attn.q_proj.weight', [3]);
    const head = modifyRows(model(), 'lm_head.weight', [4]);
    const { repo, merge } = mergeOf((r) => write(r, sharded(head, TWO)), (r) => write(r, sharded(q0, TWO)));
    expect(merge.status, merge.stderr).toBe(0);
    expect(idIn(repo, 'HEAD', 'model-00001-of-00002.safetensors', 'model.layers.0.self_attn.q_proj.weight')).toBe(idIn(repo, 'HEAD~1', 'model-00001-of-00002.safetensors', 'model.layers.0.self_attn.q_proj.weight'));
    expect(idIn(repo, 'HEAD', 'model-00002-of-00002.safetensors', 'lm_head.weight')).toBe(idIn(repo, 'theirs', 'model-00002-of-00002.safetensors', 'lm_head.weight'));
    expect(rows(repo.gitTensor(['diff', 'HEAD~1', 'HEAD']).stdout)).toEqual(['! lm_head.weight']);
  });

  it('the same tensor changed on both sides: a conflict in that shard only', () => {
    const { repo, merge } = mergeOf(
      (r) => write(r, sharded(modifyRows(model(), 'model.layers.1.mlp.up_proj.weight', [2], 'theirs'), TWO)),
      (r) => write(r, sharded(modifyRows(model(), 'model.layers.1.mlp.up_proj.weight', [2], 'ours'), TWO)),
    );
    expect(merge.status).not.toBe(0);
    expect(merge.stderr).toContain('CONFLICT model.layers.1.mlp.up_proj.weight');
    const unmerged = repo.git(['diff', '--name-only', '--diff-filter=U']).stdout.trim().split('\n');
    expect(unmerged).toEqual(['model-00002-of-00002.safetensors']);
  });

  it('a tensor moved to another shard on one side and modified on the other: a conflict that says where it went', () => {
    const moved = [['model.embed_tokens', 'model.layers.', 'model.norm'], ['lm_head']];
    const { repo, merge } = mergeOf(
      (r) => write(r, sharded(model(), moved)),
      (r) => write(r, sharded(modifyRows(model(), 'model.layers.1.self_attn.k_proj.weight', [7]), TWO)),
    );
    expect(merge.status).not.toBe(0);
    expect(merge.stderr).toContain('model.layers.1.self_attn.k_proj.weight: theirs moved it to model-00001-of-00002.safetensors without changing it');
    expect(merge.stderr).toContain('hint: git merges shard files one by one');
    // Nothing is lost: ours' version of the tensor is what the conflicted shard holds.
    const ours = modifyRows(model(), 'model.layers.1.self_attn.k_proj.weight', [7]).find((t) => t.name === 'model.layers.1.self_attn.k_proj.weight')!;
    expect(copiesInWorktree(repo, ours.name).get('model-00002-of-00002.safetensors')?.equals(Buffer.from(ours.data))).toBe(true);
  });

  it('a resharding on one side and a modification on the other: the change is merged where git pairs the files, else a conflict that says where the tensor went', () => {
    // git pairs each old shard with the new file most like it (rename detection on the pointers): a tensor
    // that stays in its pair merges as any one-sided change...
    const down = 'model.layers.0.mlp.down_proj.weight';
    const kept = mergeOf(
      (r) => write(r, sharded(model(), THREE), { removeOthers: true }),
      (r) => write(r, sharded(modifyRows(model(), down, [1]), TWO)),
    );
    expect(kept.merge.status, kept.merge.stderr).toBe(0);
    const merged = kept.repo.gitTensor(['diff', 'theirs', 'HEAD']).stdout;
    expect(merged).toContain(`${INDEX} (3 shards): 1/17 tensors changed`);
    expect(rows(merged)).toEqual([`! ${down}`]);
    expect(merged).not.toMatch(/error|warning/);

    // ...and one that the resharding put in another file is a conflict naming that file; ours' version
    // stays in the working tree.
    const embed = 'model.embed_tokens.weight';
    const moved = mergeOf(
      (r) => write(r, sharded(model(), THREE), { removeOthers: true }),
      (r) => write(r, sharded(modifyRows(model(), embed, [1]), TWO)),
    );
    expect(moved.merge.status).not.toBe(0);
    expect(moved.merge.stderr).toContain(`${embed}: theirs moved it to model-00001-of-00003.safetensors without changing it`);
    const ours = modifyRows(model(), embed, [1]).find((t) => t.name === embed)!;
    expect([...copiesInWorktree(moved.repo, embed).values()].some((b) => b.equals(Buffer.from(ours.data)))).toBe(true);
  });
});

describe('git show and git log -p (textconv, or the driver with --ext-diff)', () => {
  it('a commit that moves a tensor between shards shows only the real change', () => {
    const repo = makeRepo();
    const base = model();
    write(repo, sharded(base, TWO));
    repo.commit(['.'], 'base');
    const tuned = modifyRows(base, 'model.layers.1.mlp.up_proj.weight', [0, 3]);
    write(repo, sharded(tuned, [['model.embed_tokens', 'model.layers.'], ['model.norm', 'lm_head']]));
    repo.commit(['.'], 'move layer 1, tune one tensor');
    for (const args of [['show'], ['show', '--ext-diff'], ['log', '-p', '-1'], ['log', '-p', '-1', '--ext-diff']]) {
      const out = repo.git(args).stdout;
      expect(rows(out.split('\n').map((l) => l.replace(/^\+/, '')).join('\n')), args.join(' ')).toEqual(['! model.layers.1.mlp.up_proj.weight']);
      expect(out, args.join(' ')).toContain('moved from model-00002-of-00002.safetensors to model-00001-of-00002.safetensors: 7 tensor(s), 6 with the same values');
    }
  });
});

describe('a sharded model in a folder, next to other checkpoints', () => {
  it('is found in its folder; a path naming one shard shows the whole model; other checkpoints stay files', () => {
    const repo = makeRepo();
    const base = model();
    const ckpt = sharded(base, TWO);
    for (const [name, bytes] of ckpt.shards) repo.write(`ckpt/${name}`, bytes);
    repo.write(`ckpt/${INDEX}`, ckpt.indexJson);
    const other = tinyModel({ seed: 'other', layers: 1 });
    repo.write('other/model.safetensors', toSafetensors(other));
    repo.commit(['.'], 'base');

    const tuned = sharded(modifyRows(base, 'lm_head.weight', [3]), [['model.embed_tokens', 'model.layers.', 'model.norm'], ['lm_head']]);
    for (const [name, bytes] of tuned.shards) repo.write(`ckpt/${name}`, bytes);
    repo.write(`ckpt/${INDEX}`, tuned.indexJson);
    repo.write('other/model.safetensors', toSafetensors(modifyRows(other, 'model.norm.weight', [0])));

    const all = repo.gitTensor(['diff']).stdout;
    expect(all).toContain(`ckpt/${INDEX} (2 shards): 1/17 tensors changed`);
    expect(all).toContain('other/model.safetensors: 1/');
    expect(rows(all).sort()).toEqual(['! lm_head.weight', '! model.norm.weight']);
    // One shard named: its whole model, and nothing else.
    const one = repo.gitTensor(['diff', '--', 'ckpt/model-00001-of-00002.safetensors']).stdout;
    expect(one).toContain(`ckpt/${INDEX} (2 shards): 1/17 tensors changed`);
    expect(one).not.toContain('other/');
    expect(rows(one)).toEqual(['! lm_head.weight']);

    const gitDiff = repo.git(['diff']).stdout;
    expect(gitDiff).toContain('ckpt/model-00001-of-00002.safetensors (shard of ckpt/model.safetensors.index.json): 0/16 tensors changed');
    expect(gitDiff).toContain('ckpt/model-00002-of-00002.safetensors (shard of ckpt/model.safetensors.index.json): 1/1 tensors changed');
    expect(rows(gitDiff).sort()).toEqual(['! lm_head.weight', '! model.norm.weight']);
  });
});
