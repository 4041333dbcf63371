// How tensor packs are laid out on the host and pushed to it (docs/remote.md, "Layout on the host",
// "Pushes that fit host limits"). Several versions pushed in one `git push` still give clones that
// download about one version: packs never mix objects that different sets of the pushed commits need.
// A large push goes up in several git pushes, each under `tensor.pushSizeLimit`; one interrupted after
// some of them is finished by running it again, which sends only the packs the host lacks.

import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { replaceTensors, tinyModel, toSafetensors, type TensorInput } from '../helpers/models.js';
import { makeRepo, type Repo } from '../helpers/repo.js';
import { cloneRepo, hostRefs, startHttpServer, type HttpGitHost } from '../helpers/servers.js';

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
