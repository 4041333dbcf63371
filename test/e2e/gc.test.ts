// A user tidies the store with `git tensor gc`: many packs become one, every version still checks out,
// objects nothing can reach any more are dropped only past the grace period, and leftovers of killed
// commands are removed.

import { copyFileSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { modifyRows, replaceTensors, tinyModel, toSafetensors } from '../helpers/models.js';
import { makeRepo, type Repo } from '../helpers/repo.js';

const base = tinyModel({ seed: 'gc', layers: 2, hidden: 32 });
const v1 = toSafetensors(base, { format: 'pt' });
const v2 = toSafetensors(modifyRows(base, 'model.layers.0.mlp.up_proj.weight', [1, 2]), { format: 'pt' });
const scratch = toSafetensors(replaceTensors(base, ['lm_head.weight', 'model.embed_tokens.weight'], 'scratch'), { format: 'pt' });

/** main at v1, and a branch `experiment` whose one commit holds the scratch version; main checked out. */
function withExperiment(): Repo {
  const repo = makeRepo();
  repo.write('model.safetensors', v1);
  repo.commit(['model.safetensors'], 'v1');
  repo.git(['switch', '-q', '-c', 'experiment']);
  repo.write('model.safetensors', scratch);
  repo.commit(['model.safetensors'], 'scratch');
  repo.git(['switch', '-q', 'main']);
  return repo;
}

describe('git tensor gc', () => {
  it('merges packs into one and every version still checks out exactly', () => {
    const repo = makeRepo();
    repo.write('model.safetensors', v1);
    repo.commit(['model.safetensors'], 'v1');
    repo.write('model.safetensors', v2);
    repo.commit(['model.safetensors'], 'v2');
    expect(repo.packFiles().filter((f) => f.endsWith('.pack')).length).toBeGreaterThan(1);

    const r = repo.gitTensor(['gc', '--json']);
    const report = JSON.parse(r.stdout);
    expect(report.packsAfter).toBe(1);
    expect(report.dropped).toBe(0);
    expect(repo.packFiles().filter((f) => f.endsWith('.pack'))).toHaveLength(1);
    expect(repo.gitTensor(['fsck']).status).toBe(0);

    repo.git(['checkout', '-q', 'HEAD~1', '--', 'model.safetensors']);
    expect(repo.read('model.safetensors').equals(v1)).toBe(true);
    repo.git(['checkout', '-q', 'HEAD', '--', 'model.safetensors']);
    expect(repo.read('model.safetensors').equals(v2)).toBe(true);
  });

  it('drops objects of an abandoned version only with --prune=now, never what a ref, reflog or the index needs', () => {
    const repo = withExperiment();

    // Still reachable through the branch, then through the reflog: nothing may go.
    expect(JSON.parse(repo.gitTensor(['gc', '--prune=now', '--json']).stdout).dropped).toBe(0);
    repo.git(['branch', '-q', '-D', 'experiment']);
    expect(JSON.parse(repo.gitTensor(['gc', '--prune=now', '--json']).stdout).dropped).toBe(0);

    // Forgotten everywhere: the recent pack keeps it under the default grace period, --prune=now drops it.
    repo.git(['reflog', 'expire', '--expire=now', '--all']);
    expect(JSON.parse(repo.gitTensor(['gc', '--json']).stdout).dropped).toBe(0);
    const pruned = JSON.parse(repo.gitTensor(['gc', '--prune=now', '--json']).stdout);
    expect(pruned.dropped).toBeGreaterThan(0);
    expect(pruned.bytesAfter).toBeLessThan(pruned.bytesBefore);
    expect(repo.gitTensor(['fsck']).status).toBe(0);
    repo.remove('model.safetensors');
    repo.git(['checkout', '-q', '--', 'model.safetensors']);
    expect(repo.read('model.safetensors').equals(v1)).toBe(true);
  });

  it('keeps an unreachable object in its grace period when a killed gc left it in an old pack and in a new one', () => {
    const repo = withExperiment();
    const scratchPointer = repo.git(['cat-file', 'blob', 'experiment:model.safetensors']).stdout;
    repo.git(['branch', '-q', '-D', 'experiment']);
    repo.git(['reflog', 'expire', '--expire=now', '--all']);
    // What a gc killed after writing a group's new pack leaves: each object in a fresh pack (the new one)
    // and in a pack three weeks old (the old one it had not removed yet).
    const packDir = join(repo.storeDir, 'packs');
    const threeWeeksAgo = new Date(Date.now() - 21 * 24 * 3600 * 1000);
    for (const f of readdirSync(packDir).filter((n) => n.endsWith('.pack'))) {
      const oldName = f.replace(/^pack-/, 'pack-0ld');
      for (const ext of ['.pack', '.idx']) {
        const from = join(packDir, f.replace(/\.pack$/, ext)), to = join(packDir, oldName.replace(/\.pack$/, ext));
        copyFileSync(from, to);
        utimesSync(to, threeWeeksAgo, threeWeeksAgo);
      }
    }
    // Larger old packs come first in gc's order; the fresh copies must still keep the scratch version.
    expect(JSON.parse(repo.gitTensor(['gc', '--json']).stdout).dropped).toBe(0);
    repo.write('scratch.ptr', scratchPointer);
    repo.git(['update-index', '--add', '--cacheinfo', `100644,${repo.git(['hash-object', '-w', 'scratch.ptr']).stdout.trim()},restored.safetensors`]);
    repo.git(['checkout', '--', 'restored.safetensors']);
    expect(repo.read('restored.safetensors').equals(scratch)).toBe(true);
  });

  it('removes files left by killed commands once they are old, and keeps fresh ones', () => {
    const repo = makeRepo();
    repo.write('model.safetensors', v1);
    repo.commit(['model.safetensors'], 'v1');
    const tmp = join(repo.storeDir, 'tmp');
    const old = join(tmp, '.pack.1234.deadbeef.tmp');
    const fresh = join(tmp, '.pack.5678.cafebabe.tmp');
    const oldDir = join(tmp, 'transfer-old.git');
    writeFileSync(old, 'partial');
    writeFileSync(fresh, 'partial');
    mkdirSync(oldDir);
    const twoHoursAgo = new Date(Date.now() - 2 * 3600 * 1000);
    utimesSync(old, twoHoursAgo, twoHoursAgo);
    utimesSync(oldDir, twoHoursAgo, twoHoursAgo);

    const report = JSON.parse(repo.gitTensor(['gc', '--json']).stdout);
    expect(report.leftoversRemoved).toBe(2);
    expect(repo.exists(old.slice(repo.dir.length + 1))).toBe(false);
    expect(repo.exists(fresh.slice(repo.dir.length + 1))).toBe(true);
  });

  it('refuses a malformed --prune value with a usage error', () => {
    const repo = makeRepo();
    const r = repo.gitTensor(['gc', '--prune=yesterday'], { allowFail: true });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--prune takes "now" or a time like 2\.weeks\.ago/);
  });

  it('git add stores a new checkpoint raw and fast; gc compresses it, and every version still checks out exactly', () => {
    const repo = makeRepo();
    const weights = bf16Model(11);
    repo.write('model.safetensors', weights);
    repo.commit(['model.safetensors'], 'v1');
    const afterAdd = repo.packBytes();
    expect(afterAdd).toBeGreaterThan(weights.length);

    // A sparse fine-tune: its changed chunks are deltas from the start, a small fraction of the file.
    const tuned = Buffer.from(weights);
    for (let at = tuned.length - 2 * 65536; at < tuned.length; at += 4096) tuned[at]! ^= 1;
    repo.write('model.safetensors', tuned);
    repo.commit(['model.safetensors'], 'v2');
    expect(repo.packBytes() - afterAdd).toBeLessThan(0.1 * 2 * 65536);

    const report = JSON.parse(repo.gitTensor(['gc', '--json']).stdout);
    expect(report.compressed).toBeGreaterThan(0);
    // BF16 weights: the exponent plane compresses to a few bits, the mantissa plane stays raw.
    expect(repo.packBytes()).toBeLessThan(0.85 * weights.length);
    expect(repo.gitTensor(['fsck']).status).toBe(0);
    repo.git(['checkout', '-q', 'HEAD~1', '--', 'model.safetensors']);
    expect(repo.read('model.safetensors').equals(weights)).toBe(true);
    repo.git(['checkout', '-q', 'HEAD', '--', 'model.safetensors']);
    expect(repo.read('model.safetensors').equals(tuned)).toBe(true);

    // Nothing left to compress: a second gc keeps the one pack as it is.
    const again = JSON.parse(repo.gitTensor(['gc', '--json']).stdout);
    expect(again.compressed).toBe(0);
    expect(again.bytesAfter).toBe(again.bytesBefore);
  });

  it('with tensor.compressOnAdd=true, git add compresses as it stores (what gc would do later)', () => {
    const repo = makeRepo();
    repo.git(['config', 'tensor.compressOnAdd', 'true']);
    const weights = bf16Model(12);
    repo.write('model.safetensors', weights);
    repo.commit(['model.safetensors'], 'v1');
    expect(repo.packBytes()).toBeLessThan(0.85 * weights.length);
    const report = JSON.parse(repo.gitTensor(['gc', '--json']).stdout);
    expect(report.compressed).toBe(0);
  });
});

/** A BF16 checkpoint of two 256x512 matrices with values shaped like trained weights (they compress). */
function bf16Model(seed: number): Buffer {
  const tensor = (name: string) => {
    const data = Buffer.alloc(256 * 512 * 2);
    let s = seed + name.length;
    const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let i = 0; i < data.length / 2; i++) {
      f[0] = (next() + next() + next() - 1.5) * 0.04;
      data.writeUInt16LE(u[0]! >>> 16, 2 * i);
    }
    return { name, dtype: 'BF16' as const, shape: [256, 512], data };
  };
  return toSafetensors([tensor('a.weight'), tensor('bb.weight')], { format: 'pt' });
}
