// A user pushes and clones models through an ordinary git host over smart HTTP (`git http-backend`),
// with a `tensor::` remote and the git commands they already know: push, clone, pull. The host keeps the
// chunks as packs under refs/tensor/*, hidden from the user; a clone downloads only the version it checks
// out; a fine-tune pushed after its base sends about the changed chunks only.

import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { modifyRows, replaceTensors, tinyModel, toSafetensors, type TensorInput } from '../helpers/models.js';
import { makeRepo, type Repo } from '../helpers/repo.js';
import { cloneRepo, hostRefs, startHttpServer, type HttpGitHost } from '../helpers/servers.js';

let host: HttpGitHost;
beforeAll(async () => {
  host = await startHttpServer();
});
// Each test drives git synchronously; a real turn of the event loop between tests lets vitest's worker
// answer its runner (a file of blocking tests otherwise trips vitest's 60 s RPC timeout).
afterEach(async () => {
  host.clearFaults();
  await new Promise((resolve) => setTimeout(resolve, 20));
});

const MiB = 1 << 20;
/** About 1.5 MiB of F32 in 17 tensors: rows of 512 bytes, so a 64 KiB chunk holds 128 rows. */
const baseTensors = tinyModel({ seed: 'remote/base', layers: 2, hidden: 128, vocab: 512 });
const base = toSafetensors(baseTensors, { format: 'pt' });

/** A sparse fine-tune: a few rows of a few tensors change, everything else keeps its bytes. */
function fineTune(tensors: TensorInput[], step: number): TensorInput[] {
  let out = modifyRows(tensors, 'model.embed_tokens.weight', [step, 100 + step], `ft${step}`);
  out = modifyRows(out, `model.layers.${step % 2}.mlp.up_proj.weight`, [3 * step, 200 + step], `ft${step}`);
  return out;
}

/** A user's repository with a tensor:: remote on a fresh host repository. */
function pusher(name: string, opts: { packSizeLimit?: string } = {}): { repo: Repo; url: string; name: string } {
  const repo = makeRepo();
  host.createRepo(name);
  const url = host.url(name);
  repo.git(['remote', 'add', 'origin', `tensor::${url}`]);
  repo.git(['config', 'tensor.packSizeLimit', opts.packSizeLimit ?? '128k']);
  return { repo, url, name };
}

function expectBytes(repo: Repo, path: string, expected: Buffer): void {
  const actual = repo.read(path);
  expect(actual.equals(expected), `${path}: ${actual.length} bytes, expected ${expected.length} (contents differ)`).toBe(true);
}

function expectFsckClean(repo: Repo): void {
  const r = repo.gitTensor(['fsck', '--json'], { allowFail: true });
  expect(r.status, r.stdout + r.stderr).toBe(0);
}

function tensorRefs(name: string, kind: 'packs' | 'idx'): string[] {
  return [...hostRefs(host, name, `refs/tensor/${kind}/`).keys()].map((r) => r.slice(`refs/tensor/${kind}/`.length)).sort();
}

describe('push and clone over smart HTTP', () => {
  it('push uploads packs before the branch; clone checks out the exact bytes; refs/tensor/* stay hidden', () => {
    const { repo: a, url, name } = pusher('push-clone');
    a.write('model.safetensors', base);
    a.commit(['model.safetensors'], 'base model');
    a.git(['push', '-u', 'origin', 'main']);

    const packs = tensorRefs(name, 'packs');
    expect(packs.length).toBeGreaterThan(8); // 1.5 MiB in packs of at most 128 KiB: more than one push of packs
    expect(tensorRefs(name, 'idx')).toEqual(packs);
    expect(hostRefs(host, name).get('refs/heads/main')).toBe(a.git(['rev-parse', 'HEAD']).stdout.trim());

    const b = cloneRepo(`tensor::${url}`);
    expectBytes(b, 'model.safetensors', base);
    expect(b.git(['status', '--porcelain']).stdout).toBe('');
    expect(b.git(['branch', '-a']).stdout).not.toMatch(/tensor/);
    expect(b.git(['ls-remote', 'origin']).stdout).not.toMatch(/refs\/tensor/);
    expect(a.git(['ls-remote', 'origin']).stdout).toMatch(/refs\/heads\/main/);
    expectFsckClean(b);
  });

  it('a second push of the same commits uploads nothing and moves nothing', () => {
    const { repo: a, name } = pusher('idempotent');
    a.write('model.safetensors', base);
    a.commit(['model.safetensors'], 'base');
    a.git(['push', 'origin', 'main']);
    const before = hostRefs(host, name);
    host.resetStats();
    const again = a.git(['push', 'origin', 'main']);
    expect(again.stderr).toMatch(/up-to-date|up to date/i);
    expect(hostRefs(host, name)).toEqual(before);
    expect(host.stats.receivePacks).toBe(0);
  });

  it('a sparse fine-tune pushed after its base sends about its changed chunks; pull brings it exactly', () => {
    const { repo: a, url } = pusher('finetune');
    a.write('model.safetensors', base);
    a.commit(['model.safetensors'], 'base');
    a.git(['push', '-u', 'origin', 'main']);
    const b = cloneRepo(`tensor::${url}`);
    expectBytes(b, 'model.safetensors', base);

    const tuned = toSafetensors(fineTune(baseTensors, 1), { format: 'pt' });
    const storedBefore = a.packBytes();
    a.write('model.safetensors', tuned);
    a.commit(['model.safetensors'], 'fine-tune');
    const changed = a.packBytes() - storedBefore;
    expect(changed).toBeLessThan(base.length / 4);

    host.resetStats();
    a.git(['push']);
    // Target: bytes sent <= 1.1 x the changed chunks + 1 MiB (git's own framing and the user's commit included).
    expect(host.stats.pushedBytes).toBeLessThanOrEqual(1.1 * changed + MiB);

    host.resetStats();
    const pull = b.git(['pull', '--ff-only']);
    expect(pull.status).toBe(0);
    expectBytes(b, 'model.safetensors', tuned);
    expect(b.git(['status', '--porcelain']).stdout).toBe('');
    expect(host.stats.fetchedBytes).toBeLessThanOrEqual(1.1 * changed + MiB);
    expectFsckClean(b);
  });

  it('a clone of a repository with 5 versions holds the checked-out version only; others come when needed', () => {
    const { repo: a, url } = pusher('five-versions');
    const versions: Buffer[] = [];
    let tensors = baseTensors;
    for (let v = 0; v < 5; v++) {
      if (v > 0) tensors = replaceTensors(fineTune(tensors, v), ['lm_head.weight', `model.layers.${v % 2}.mlp.down_proj.weight`], `five/${v}`);
      versions.push(toSafetensors(tensors, { format: 'pt' }));
      a.write('model.safetensors', versions[v]!);
      a.commit(['model.safetensors'], `version ${v + 1}`);
      a.git(['tag', `v${v + 1}`]);
    }
    a.git(['push', '-u', 'origin', 'main', '--tags']);

    // The checked-out version's stored size: a store holding that version alone.
    const alone = makeRepo();
    alone.write('model.safetensors', versions[4]!);
    alone.commit(['model.safetensors'], 'v5 alone');
    const v5Stored = alone.packBytes();

    host.resetStats();
    const b = cloneRepo(`tensor::${url}`);
    expectBytes(b, 'model.safetensors', versions[4]!);
    expect(b.packBytes()).toBeLessThanOrEqual(1.1 * v5Stored);
    expect(a.packBytes()).toBeGreaterThan(1.5 * v5Stored); // the history is much larger than one version
    expect(host.stats.fetchedBytes).toBeLessThan(1.1 * v5Stored + (1 << 20));

    // An older version is fetched when checked out...
    b.git(['checkout', '-q', 'v1']);
    expectBytes(b, 'model.safetensors', versions[0]!);
    // ...and `git tensor fetch --all` prefetches the rest, so every version then checks out offline.
    b.gitTensor(['fetch', '--all']);
    const afterFetch = b.packBytes();
    for (let v = 0; v < 5; v++) {
      b.git(['checkout', '-q', `v${v + 1}`]);
      expectBytes(b, 'model.safetensors', versions[v]!);
    }
    expect(b.packBytes()).toBe(afterFetch);
    expectFsckClean(b);
    const again = b.gitTensor(['fetch', '--all']);
    expect(again.stderr).toMatch(/nothing to fetch/);
  });

  it('`git tensor fetch <rev>` prefetches one version; a missing remote is a usage error', () => {
    const { repo: a, url } = pusher('prefetch');
    const v1 = base;
    const v2 = toSafetensors(replaceTensors(baseTensors, ['lm_head.weight'], 'prefetch'), { format: 'pt' });
    a.write('model.safetensors', v1);
    a.commit(['model.safetensors'], 'v1');
    a.git(['switch', '-q', '-c', 'other']);
    a.write('model.safetensors', v2);
    a.commit(['model.safetensors'], 'v2');
    a.git(['push', 'origin', 'main', 'other']);

    const b = cloneRepo(`tensor::${url}`);
    const before = b.packBytes();
    const r = b.gitTensor(['fetch', 'origin/other']);
    expect(r.stderr).toMatch(/fetched \d+ object/);
    expect(b.packBytes()).toBeGreaterThan(before);
    b.git(['remote', 'remove', 'origin']);
    // Offline from here: the version was prefetched.
    b.git(['switch', '-q', '-c', 'other', '--no-track', 'refs/tensor-remote/origin/heads/other']);
    expectBytes(b, 'model.safetensors', v2);

    const none = b.gitTensor(['fetch'], { allowFail: true });
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/E_NO_REMOTE/);
    expect(none.stderr).toMatch(/git remote add origin tensor::/);
  });

  it('merging a branch the clone never checked out fetches its tensors, then merges them exactly', () => {
    const { repo: a, url } = pusher('lazy-merge');
    a.write('model.safetensors', base);
    a.commit(['model.safetensors'], 'base');
    a.git(['switch', '-q', '-c', 'tune-a']);
    const tunedA = modifyRows(baseTensors, 'model.embed_tokens.weight', [1, 2], 'a');
    a.write('model.safetensors', toSafetensors(tunedA, { format: 'pt' }));
    a.commit(['model.safetensors'], 'tune a');
    a.git(['switch', '-q', '-c', 'tune-b', 'main']);
    const tunedB = modifyRows(modifyRows(baseTensors, 'model.embed_tokens.weight', [60, 61], 'b'), 'lm_head.weight', [7], 'b');
    a.write('model.safetensors', toSafetensors(tunedB, { format: 'pt' }));
    a.commit(['model.safetensors'], 'tune b');
    a.git(['push', 'origin', 'main', 'tune-a', 'tune-b']);

    const b = cloneRepo(`tensor::${url}`);
    b.git(['switch', '-q', '-c', 'tune-a', '--no-track', 'refs/tensor-remote/origin/heads/tune-a']);
    const before = b.packBytes();
    // tune-b's new rows are in no version this clone has checked out: the merge driver fetches them.
    const merge = b.git(['merge', '--no-edit', 'refs/tensor-remote/origin/heads/tune-b']);
    expect(merge.stderr).toMatch(/merged exactly by disjoint union/);
    expect(b.packBytes()).toBeGreaterThan(before);
    const union = modifyRows(modifyRows(tunedA, 'model.embed_tokens.weight', [60, 61], 'b'), 'lm_head.weight', [7], 'b');
    expectBytes(b, 'model.safetensors', toSafetensors(union, { format: 'pt' }));
    expect(b.git(['status', '--porcelain']).stdout).toBe('');
    expectFsckClean(b);

    // So do `git diff` and `git tensor diff` between two branches the clone never checked out.
    const [tuneA, tuneB] = ['tune-a', 'tune-b'].map((br) => `refs/tensor-remote/origin/heads/${br}`);
    const c = cloneRepo(`tensor::${url}`);
    const table = c.git(['diff', tuneA!, tuneB!]).stdout;
    expect(table).not.toMatch(/cannot compare/);
    expect(table).toMatch(/model\.embed_tokens\.weight/);
    expect(table).toMatch(/lm_head\.weight/);
    const d = cloneRepo(`tensor::${url}`);
    const json = JSON.parse(d.gitTensor(['diff', '--json', tuneA!, tuneB!]).stdout);
    const changed = json.files[0].tensors.filter((t: { status: string }) => t.status !== 'unchanged').map((t: { name: string }) => t.name).sort();
    expect(changed).toEqual(['lm_head.weight', 'model.embed_tokens.weight']);
  });

  it('progress like git\'s own with --progress; nothing with --quiet', () => {
    const { repo: a } = pusher('progress');
    a.write('model.safetensors', base);
    a.commit(['model.safetensors'], 'base');
    const loud = a.git(['push', '--progress', 'origin', 'main']);
    // The rate appears, as in git's own progress, only once a transfer has run for half a second.
    expect(loud.stderr).toMatch(/Uploading tensor packs: 100% \((\d+)\/\1\), [\d.]+ MiB(?: \| [\d.]+ (?:bytes|KiB|MiB|GiB)\/s)?, done\./);
    expect(loud.stderr).toMatch(/Uploading tensor packs: +0% \(0\/\d+\)/);

    const a2 = pusher('quiet').repo;
    a2.write('model.safetensors', base);
    a2.commit(['model.safetensors'], 'base');
    const quiet = a2.git(['push', '--quiet', '--progress', 'origin', 'main']);
    expect(quiet.stderr).not.toMatch(/Uploading tensor packs/);
    expect(quiet.stderr).toBe('');
  });
});

describe('two clones pushing at the same time', () => {
  it('never lose each other\'s packs: both fine-tunes check out exactly from a third clone', async () => {
    const { runAsync } = await import('../helpers/servers.js');
    const { repo: a, url, name } = pusher('concurrent');
    a.write('model.safetensors', base);
    a.commit(['model.safetensors'], 'base');
    a.git(['push', '-u', 'origin', 'main']);
    const refsBefore = hostRefs(host, name, 'refs/tensor/');

    const clones = [cloneRepo(`tensor::${url}`), cloneRepo(`tensor::${url}`)];
    const tuned = [1, 2].map((k) => toSafetensors(replaceTensors(fineTune(baseTensors, k), [`model.layers.${k - 1}.self_attn.v_proj.weight`], `conc${k}`), { format: 'pt' }));
    clones.forEach((c, k) => {
      c.git(['config', 'tensor.packSizeLimit', '32k']);
      c.git(['switch', '-q', '-c', `ft-${k}`]);
      c.write('model.safetensors', tuned[k]!);
      c.commit(['model.safetensors'], `fine-tune ${k}`);
    });
    const pushes = clones.map((c, k) => runAsync('git', ['push', 'origin', `ft-${k}`], c.dir, c.env));
    const results = await Promise.all(pushes.map((p) => p.done));
    results.forEach((r) => expect(r.status, r.stderr).toBe(0));

    // Refs are only ever added: every ref that existed before still points where it did.
    const refsAfter = hostRefs(host, name, 'refs/tensor/');
    for (const [ref, sha] of refsBefore) expect(refsAfter.get(ref)).toBe(sha);
    expect(refsAfter.size).toBeGreaterThan(refsBefore.size);

    const c = cloneRepo(`tensor::${url}`);
    for (const k of [0, 1]) {
      c.git(['switch', '-q', `ft-${k}`]);
      expectBytes(c, 'model.safetensors', tuned[k]!);
    }
    expectFsckClean(c);
  });
});
