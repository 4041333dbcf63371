// Transfers go wrong: the host answers 503 for a while, a push is killed half-way, a download is cut off,
// a pack was deleted on the host. Transient failures are retried; whatever is interrupted leaves both
// sides consistent and the same command simply run again finishes the job; a pack missing on the host
// is a clear error naming the object and the ref.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tinyModel, toSafetensors } from '../helpers/models.js';
import { makeRepo, pointerAt, pointerTensors, type Repo } from '../helpers/repo.js';
import { cloneRepo, hostRefs, killTree, run, runAsync, startHttpServer, type HttpGitHost } from '../helpers/servers.js';

let host: HttpGitHost;
beforeAll(async () => {
  host = await startHttpServer();
});
afterEach(async () => {
  host.clearFaults();
  await new Promise((resolve) => setTimeout(resolve, 20));
});

const model = toSafetensors(tinyModel({ seed: 'remote-faults', layers: 2, hidden: 128, vocab: 512 }), { format: 'pt' });

function pusher(name: string, packSizeLimit = '128k'): { repo: Repo; url: string } {
  const repo = makeRepo();
  host.createRepo(name);
  const url = host.url(name);
  repo.git(['remote', 'add', 'origin', `tensor::${url}`]);
  repo.git(['config', 'tensor.packSizeLimit', packSizeLimit]);
  repo.write('model.safetensors', model);
  repo.commit(['model.safetensors'], 'model');
  return { repo, url };
}

function expectModel(repo: Repo): void {
  expect(repo.read('model.safetensors').equals(model), 'model.safetensors differs from what was pushed').toBe(true);
  expect(repo.git(['status', '--porcelain']).stdout).toBe('');
}

/** Every pack the host lists has its index and vice versa: what a clone relies on. */
function expectHostConsistent(name: string): { packs: Map<string, string>; idx: Map<string, string> } {
  const packs = hostRefs(host, name, 'refs/tensor/packs/');
  const idx = hostRefs(host, name, 'refs/tensor/idx/');
  expect([...packs.keys()].map((r) => r.split('/').pop()).sort()).toEqual([...idx.keys()].map((r) => r.split('/').pop()).sort());
  return { packs, idx };
}

function transferLeftovers(repo: Repo): string[] {
  const tmp = join(repo.storeDir, 'tmp');
  return existsSync(tmp) ? readdirSync(tmp).filter((f) => f.startsWith('transfer-')) : [];
}

describe('transient failures are retried', () => {
  it('a push whose first upload gets HTTP 503 succeeds on its own', () => {
    const { repo, url } = pusher('retry-push');
    const tripped = host.inject({ service: 'git-receive-pack', action: 'fail', status: 503 });
    const push = repo.git(['push', 'origin', 'main']);
    expect(push.stderr).toMatch(/retrying in/);
    void tripped;
    expectHostConsistent('retry-push');
    expectModel(cloneRepo(`tensor::${url}`));
  });

  it('a checkout whose pack download gets HTTP 502 succeeds on its own', () => {
    const { repo, url } = pusher('retry-fetch');
    repo.git(['push', 'origin', 'main']);
    // In a clone: 1. the helper's ref listing has no fetch; fetches are 1. the branch, 2. the pack
    // indexes, 3. the packs the checkout needs.
    void host.inject({ service: 'git-upload-pack', command: 'fetch', nth: 3, action: 'fail', status: 502 });
    const b = cloneRepo(`tensor::${url}`);
    expect(b.clone.stderr).toMatch(/retrying in/);
    expectModel(b);
  });
});

describe('interrupted transfers can simply be run again', () => {
  it('a push killed half-way leaves whole packs and no branch on the host; pushing again completes it', async () => {
    // 1.5 MiB in 32 KiB packs: about 48 packs, pushed about 256 KiB at a time.
    const { repo, url } = pusher('killed-push', '32k');
    repo.git(['config', 'tensor.pushSizeLimit', '256k']);
    const stalled = host.inject({ service: 'git-receive-pack', nth: 3, action: 'stall' });
    const push = runAsync('git', ['push', 'origin', 'main'], repo.dir, repo.env);
    await stalled;
    killTree(push.child);
    await push.done;

    const before = expectHostConsistent('killed-push');
    // Two pushes of packs made it, the third never did.
    expect(before.packs.size).toBeGreaterThanOrEqual(2);
    expect(before.packs.size).toBeLessThanOrEqual(16);
    expect(hostRefs(host, 'killed-push', 'refs/heads/').size).toBe(0);
    // The killed process's scratch repositories: the batch being pushed, and the next one if it was
    // being prepared meanwhile.
    expect(transferLeftovers(repo).length).toBeGreaterThanOrEqual(1);
    expect(transferLeftovers(repo).length).toBeLessThanOrEqual(2);

    host.clearFaults();
    host.resetStats();
    repo.git(['push', 'origin', 'main']);
    const after = expectHostConsistent('killed-push');
    for (const [ref, sha] of before.packs) expect(after.packs.get(ref)).toBe(sha);
    expect(after.packs.size).toBeGreaterThan(before.packs.size);
    // Only what was missing went up again: less than the whole model.
    expect(host.stats.pushedBytes).toBeLessThan(0.8 * model.length);
    expect(transferLeftovers(repo)).toEqual([]);
    expectModel(cloneRepo(`tensor::${url}`));
  });

  it('a download cut off with retries disabled fails cleanly; restoring the checkout then finishes it', () => {
    const { repo, url } = pusher('cut-fetch');
    repo.git(['push', 'origin', 'main']);
    void host.inject({ service: 'git-upload-pack', command: 'fetch', nth: 3, action: 'fail', status: 500 });
    const b = cloneRepo(`tensor::${url}`, { args: ['-c', 'tensor.transferRetries=0'], allowFail: true });
    expect(b.clone.status).not.toBe(0);
    expect(b.clone.stderr).toMatch(/E_REMOTE_TRANSFER/);
    expect(b.clone.stderr).toMatch(/run the same command again/);
    expect(b.packFiles()).toEqual([]);
    expect(transferLeftovers(b)).toEqual([]);

    host.clearFaults();
    b.git(['restore', '--source=HEAD', '--staged', '--worktree', ':/']);
    expectModel(b);
  });

  it('`git tensor fetch` killed while downloading leaves the store as it was; run again, it completes', async () => {
    const { repo, url } = pusher('killed-fetch');
    repo.git(['push', 'origin', 'main']);
    const b = cloneRepo(`tensor::${url}`, { env: { GIT_TENSOR_SKIP_SMUDGE: '1' } });
    expect(b.packFiles()).toEqual([]);
    const stalled = host.inject({ service: 'git-upload-pack', command: 'fetch', action: 'stall' });
    const fetch = runAsync('git', ['tensor', 'fetch'], b.dir, b.env);
    await stalled;
    killTree(fetch.child);
    await fetch.done;
    expect(b.packFiles()).toEqual([]);

    host.clearFaults();
    b.gitTensor(['fetch']);
    b.remove('model.safetensors');
    b.git(['checkout', '--', 'model.safetensors'], { env: { GIT_TENSOR_SKIP_SMUDGE: undefined } });
    expect(b.read('model.safetensors').equals(model)).toBe(true);
    expect(transferLeftovers(b)).toEqual([]);
  });
});

describe('a pack missing on the host', () => {
  it('is an error naming the object, the pack ref and what to do', () => {
    const { repo, url } = pusher('missing-pack');
    repo.git(['push', 'origin', 'main']);
    // Delete the pack that holds one tensor's object, as a host-side cleanup gone wrong would.
    const id = pointerTensors(pointerAt(repo, 'HEAD', 'model.safetensors')).find((t) => t.name === 'lm_head.weight')!.id;
    const refs = hostRefs(host, 'missing-pack', 'refs/tensor/packs/');
    const bare = host.repoPath('missing-pack');
    const victim = [...refs.keys()].find((ref) => {
      const listing = run('git', ['show', `${ref}:idx`], bare, repo.env).stdoutBytes;
      return listing.includes(Buffer.from(id, 'hex'));
    })!;
    expect(victim).toBeDefined();
    run('git', ['update-ref', '-d', victim], bare, repo.env);

    const b = cloneRepo(`tensor::${url}`, { allowFail: true });
    expect(b.clone.stderr).toMatch(/E_REMOTE_PACK_MISSING/);
    expect(b.clone.stderr).toContain(victim);
    expect(b.clone.stderr).toContain('model.safetensors');
    expect(b.clone.stderr).toMatch(/git push/);
  });
});
