// How tensor packs are laid out on the host and pushed to it (docs/remote.md, "Layout on the host",
// "Pushes that fit host limits"). Several versions pushed in one `git push` still give clones that
// download about one version: packs never mix objects that different sets of the pushed commits need.
// A large push goes up in several git pushes, each under `tensor.pushSizeLimit`; one interrupted after
// some of them is finished by running it again, which sends only the packs the host lacks.

import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { replaceTensors, tinyModel, toSafetensors, type TensorInput } from '../helpers/models.js';
import { makeRepo, type Repo } from '../helpers/repo.js';
import { cloneRepo, hermeticEnv, hostRefs, run, startHttpServer, type HttpGitHost } from '../helpers/servers.js';

let host: HttpGitHost;
beforeAll(async () => {
  host = await startHttpServer();
});
afterEach(async () => {
  host.clearFaults();
  await new Promise((resolve) => setTimeout(resolve, 20));
});

const MiB = 1 << 20;

/** About 6 MiB of F32 (vocab 1024 x hidden 256 embeddings and head, 2 layers of 2 MiB). */
const v1Tensors = tinyModel({ seed: 'layout/v1', layers: 2, hidden: 256, vocab: 1024 });
const names = v1Tensors.map((t) => t.name);

/**
 * Three versions that share some tensors pairwise and some with all: v2 replaces the embeddings and
 * layer 0's MLP; v3 replaces the head and layer 1's attention (keeping v2's changes).
 */
function versions(): Buffer[] {
  const v2 = replaceTensors(v1Tensors, ['model.embed_tokens.weight', 'model.layers.0.mlp.up_proj.weight', 'model.layers.0.mlp.down_proj.weight'], 'layout/v2');
  const v3 = replaceTensors(v2, ['lm_head.weight', ...names.filter((n) => n.startsWith('model.layers.1.self_attn.'))], 'layout/v3');
  return [v1Tensors, v2, v3].map((t: TensorInput[]) => toSafetensors(t, { format: 'pt' }));
}

function pusher(name: string): { repo: Repo; url: string } {
  const repo = makeRepo();
  host.createRepo(name);
  const url = host.url(name);
  repo.git(['remote', 'add', 'origin', `tensor::${url}`]);
  return { repo, url };
}

/** The store size of a repository holding `bytes` alone: what one version costs by itself. */
function storedAlone(bytes: Buffer): number {
  const alone = makeRepo();
  alone.write('model.safetensors', bytes);
  alone.commit(['model.safetensors'], 'alone');
  return alone.packBytes();
}

function expectBytes(repo: Repo, expected: Buffer): void {
  expect(repo.read('model.safetensors').equals(expected), 'model.safetensors differs from what was pushed').toBe(true);
  expect(repo.git(['status', '--porcelain']).stdout).toBe('');
}

describe('a multi-commit push keeps clones lazy', () => {
  it('three versions pushed at once (default pack size): a clone of any one downloads and holds about that version', () => {
    const { repo: a, url } = pusher('three-at-once');
    const vs = versions();
    for (const [k, v] of vs.entries()) {
      a.write('model.safetensors', v);
      a.commit(['model.safetensors'], `version ${k + 1}`);
      a.git(['tag', `v${k + 1}`]);
    }
    a.git(['push', '-u', 'origin', 'main', '--tags']);
    expect(a.packBytes()).toBeGreaterThan(1.5 * storedAlone(vs[2]!)); // the history is much larger than one version

    for (const [k, v] of vs.entries()) {
      const alone = storedAlone(v);
      host.resetStats();
      const b = cloneRepo(`tensor::${url}`, { args: ['--branch', `v${k + 1}`] });
      expectBytes(b, v);
      // Target (issue 15): a clone of one commit holds <= 1.1 x that commit's stored size + 2 MiB; the
      // bytes on the wire are held to the same bound (a pack is the unit of transfer).
      expect(b.packBytes(), `clone of v${k + 1}: store`).toBeLessThanOrEqual(1.1 * alone + 2 * MiB);
      expect(host.stats.fetchedBytes, `clone of v${k + 1}: bytes fetched`).toBeLessThanOrEqual(1.1 * alone + 2 * MiB);
    }
  });
});

/** Runs git in a host repository, as the host's administrator would. */
function hostGit(name: string, args: string[]): string {
  return run('git', args, host.repoPath(name), hermeticEnv(join(host.root, '.home'))).stdout;
}

/** Bytes of the tensor packs the host holds (the `pack` blobs under refs/tensor/packs/*). */
function hostPackBytes(name: string): number {
  const refs = [...hostRefs(host, name, 'refs/tensor/packs/').keys()];
  return refs.reduce((s, ref) => s + Number(hostGit(name, ['cat-file', '-s', `${ref}:pack`]).trim()), 0);
}

describe('pushes that fit host limits', () => {
  it('a push larger than tensor.pushSizeLimit goes up in several pushes, each accepted by a host that caps push size; one cut short is finished by pushing again', () => {
    const { repo: a, url } = pusher('capped');
    const model = versions()[0]!;
    a.write('model.safetensors', model);
    a.commit(['model.safetensors'], 'model');
    a.git(['config', 'tensor.packSizeLimit', '256k']);
    // The host refuses any push whose pack stream exceeds 1.25 MiB (as GitHub refuses pushes over 2 GiB),
    // and its pre-receive hook refuses the third push it sees: a push cut short after two.
    hostGit('capped', ['config', 'receive.maxInputSize', String(1.25 * MiB)]);
    const hook = join(host.repoPath('capped'), 'hooks', 'pre-receive');
    writeFileSync(hook, '#!/bin/sh\nn=$(cat pushes-seen 2>/dev/null || echo 0); n=$((n+1)); echo $n > pushes-seen\n[ $n -lt 3 ] || { echo "refusing push $n" >&2; exit 1; }\n');
    chmodSync(hook, 0o755);

    // Pushes larger than the host takes are refused, with what to change.
    a.git(['config', 'tensor.pushSizeLimit', '4m']);
    const tooLarge = a.git(['push', 'origin', 'main'], { allowFail: true });
    expect(tooLarge.status).not.toBe(0);
    expect(tooLarge.stderr).toMatch(/E_REMOTE_TOO_LARGE/);
    expect(tooLarge.stderr).toMatch(/hint:.*tensor\.pushSizeLimit/);
    expect(tooLarge.stderr).not.toMatch(/retrying/);
    expect(hostRefs(host, 'capped', 'refs/tensor/').size).toBe(0);

    a.git(['config', 'tensor.pushSizeLimit', '1m']);
    const cut = a.git(['push', 'origin', 'main'], { allowFail: true });
    expect(cut.status, cut.stderr).not.toBe(0);
    expect(cut.stderr).toMatch(/E_REMOTE_REJECTED.*pre-receive hook declined/);
    const early = hostRefs(host, 'capped', 'refs/tensor/packs/');
    expect(early.size).toBeGreaterThan(0); // the first two pushes stay on the host...
    expect(hostRefs(host, 'capped', 'refs/heads/').size).toBe(0); // ...and the branch has not moved
    const earlyBytes = hostPackBytes('capped');
    expect(earlyBytes).toBeGreaterThan(1 * MiB);

    rmSync(hook);
    host.resetStats();
    a.git(['push', '-u', 'origin', 'main']);
    // Pushing again sends what the host lacks only (the pack bytes plus git's framing), in pushes that
    // each passed the host's size cap: at least the remaining bytes / 1 MiB of them, plus the branch.
    const remaining = a.packBytes() - earlyBytes;
    expect(host.stats.pushedBytes).toBeLessThanOrEqual(1.05 * remaining + 256 * 1024);
    expect(host.stats.receivePacks).toBeGreaterThanOrEqual(Math.ceil(remaining / MiB) + 1);
    const after = hostRefs(host, 'capped', 'refs/tensor/packs/');
    for (const [ref, sha] of early) expect(after.get(ref)).toBe(sha);
    expect(hostPackBytes('capped')).toBeLessThanOrEqual(1.01 * a.packBytes()); // nothing was uploaded twice

    expectBytes(cloneRepo(`tensor::${url}`), model);
  });
});
