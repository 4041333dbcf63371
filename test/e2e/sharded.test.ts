// A user commits a sharded Hugging Face checkpoint: model-0000k-of-00003.safetensors plus
// model.safetensors.index.json. The shards become pointers, the index stays ordinary JSON text in git,
// everything checks out exactly, and a tensor repeated in two shards is stored once.

import { describe, expect, it } from 'vitest';
import { makeTensor, shard, tinyModel, type TensorInput } from '../helpers/models.js';
import { makeRepo, pointerAt, pointerTensors } from '../helpers/repo.js';

const INDEX = 'model.safetensors.index.json';

/** Three shards; the tied embedding (1 MiB) appears in the first and the last shard with the same bytes. */
function checkpoint() {
  const tied = makeTensor('model.embed_tokens.weight', 'F32', [1024, 256], 'sharded/tied');
  const layers = tinyModel({ seed: 'sharded', layers: 3, hidden: 64 }).filter((t) => t.name.startsWith('model.layers.'));
  const byLayer = (i: number) => layers.filter((t) => t.name.startsWith(`model.layers.${i}.`));
  const lmHead: TensorInput = { ...tied, name: 'lm_head.weight' };
  const groups = [[tied, ...byLayer(0)], [...byLayer(1)], [...byLayer(2), lmHead]];
  return { ...shard(groups), tiedBytes: tied.data.length };
}

describe('sharded checkpoints', () => {
  it('round trip: shards become pointers, the index stays plain JSON, checkout is exact', () => {
    const repo = makeRepo();
    const { shards, indexJson, weightMap } = checkpoint();
    expect([...shards.keys()]).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    for (const [name, bytes] of shards) repo.write(name, bytes);
    repo.write(INDEX, indexJson);
    repo.commit(['.'], 'sharded checkpoint');

    // The index is an ordinary text file: not tracked by git-tensor, committed verbatim, diffable.
    expect(repo.git(['check-attr', 'filter', '--', INDEX]).stdout).toBe(`${INDEX}: filter: unspecified\n`);
    expect(pointerAt(repo, 'HEAD', INDEX)).toBe(indexJson);
    for (const name of shards.keys()) {
      const pointer = pointerAt(repo, 'HEAD', name);
      expect(pointer.startsWith('git-tensor v1 safetensors\n'), name).toBe(true);
      const names = pointerTensors(pointer).map((t) => t.name).sort();
      expect(names, name).toEqual(Object.keys(weightMap).filter((k) => weightMap[k] === name).sort());
    }

    for (const name of [...shards.keys(), INDEX]) repo.remove(name);
    repo.git(['checkout', '--', '.']);
    for (const [name, bytes] of shards) expect(repo.read(name).equals(bytes), name).toBe(true);
    expect(repo.read(INDEX).toString('utf8')).toBe(indexJson);
    expect(repo.git(['status', '--porcelain']).stdout).toBe('');

    // Every shard is listed by git tensor, the index is not.
    const listed = JSON.parse(repo.gitTensor(['ls', '--json']).stdout) as { path: string }[];
    expect(listed.map((f) => f.path).sort()).toEqual([...shards.keys()].sort());
  });

  it('an edit to the index shows up as a normal text diff', () => {
    const repo = makeRepo();
    const { shards, indexJson } = checkpoint();
    for (const [name, bytes] of shards) repo.write(name, bytes);
    repo.write(INDEX, indexJson);
    repo.commit(['.'], 'sharded checkpoint');
    repo.write(INDEX, indexJson.replace('"total_size"', '"format": "pt",\n    "total_size"'));
    const diff = repo.git(['diff', '--', INDEX]).stdout;
    expect(diff).toContain('+    "format": "pt",');
  });

  it('a tensor repeated in two shards is stored once', () => {
    const repo = makeRepo();
    const { shards, indexJson, tiedBytes } = checkpoint();
    const [first, second, third] = [...shards.keys()];
    repo.write(first!, shards.get(first!)!);
    repo.write(second!, shards.get(second!)!);
    repo.write(INDEX, indexJson);
    repo.commit(['.'], 'shards 1 and 2');
    const before = repo.packBytes();

    repo.write(third!, shards.get(third!)!);
    repo.commit([third!], 'shard 3');
    const growth = repo.packBytes() - before;

    const tiedIn = (name: string) => pointerTensors(pointerAt(repo, 'HEAD', name)).find((t) => t.name.endsWith('embed_tokens.weight') || t.name === 'lm_head.weight');
    expect(tiedIn(third!)!.id).toBe(tiedIn(first!)!.id);
    // Shard 3 holds the 1 MiB tied tensor plus a few small layers; only the small layers are new.
    expect(shards.get(third!)!.length).toBeGreaterThan(tiedBytes);
    expect(growth).toBeLessThan(shards.get(third!)!.length - tiedBytes / 2);
  });
});
