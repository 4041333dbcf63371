// The same user session through every kind of git URL the host may speak besides smart HTTP:
// git:// (`git daemon --enable=receive-pack`) and file://. Push, clone, pull of a fine-tune and two
// clones pushing at once behave exactly as over HTTP, and a rejected push is reported as git reports it.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { modifyRows, replaceTensors, tinyModel, toSafetensors } from '../helpers/models.js';
import { makeRepo, type Repo } from '../helpers/repo.js';
import { cloneRepo, fileHost, hostRefs, runAsync, startGitDaemon, type GitHost } from '../helpers/servers.js';

const baseTensors = tinyModel({ seed: 'transports', layers: 2, hidden: 64, vocab: 512 });
const base = toSafetensors(baseTensors, { format: 'pt' });
const tuned = (k: number) =>
  toSafetensors(replaceTensors(modifyRows(baseTensors, 'model.embed_tokens.weight', [k, 300 + k], `t${k}`), ['lm_head.weight'], `t${k}`), { format: 'pt' });

function expectBytes(repo: Repo, expected: Buffer): void {
  expect(repo.read('model.safetensors').equals(expected), 'model.safetensors differs').toBe(true);
  expect(repo.git(['status', '--porcelain']).stdout).toBe('');
}

const hosts: { name: string; start: () => Promise<GitHost> }[] = [
  { name: 'git daemon (git://)', start: startGitDaemon },
  { name: 'file://', start: async () => fileHost() },
];

afterEach(async () => {
  await new Promise((resolve) => setTimeout(resolve, 20));
});

describe.each(hosts)('through $name', ({ start }) => {
  let host: GitHost;
  beforeAll(async () => {
    host = await start();
  });
  afterAll(async () => {
    await host.stop();
  });

  function pusher(name: string): { repo: Repo; url: string } {
    const repo = makeRepo();
    host.createRepo(name);
    const url = host.url(name);
    repo.git(['remote', 'add', 'origin', `tensor::${url}`]);
    repo.git(['config', 'tensor.packSizeLimit', '64k']);
    return { repo, url };
  }

  it('push, clone and pull of a fine-tune', () => {
    const { repo: a, url } = pusher('session');
    a.write('model.safetensors', base);
    a.commit(['model.safetensors'], 'base');
    a.git(['push', '-u', 'origin', 'main']);
    expect(hostRefs(host, 'session', 'refs/tensor/packs/').size).toBeGreaterThan(1);

    const b = cloneRepo(`tensor::${url}`);
    expectBytes(b, base);

    a.write('model.safetensors', tuned(1));
    a.commit(['model.safetensors'], 'fine-tune');
    a.git(['push']);
    b.git(['pull', '--ff-only']);
    expectBytes(b, tuned(1));
    expect(b.gitTensor(['fsck']).status).toBe(0);
  });

  it('shallow clone, --dry-run push and --force-with-lease behave as with plain git', () => {
    const { repo: a, url } = pusher('options');
    a.write('model.safetensors', base);
    a.commit(['model.safetensors'], 'base');
    a.write('model.safetensors', tuned(1));
    a.commit(['model.safetensors'], 'fine-tune');
    a.git(['push', '-u', 'origin', 'main']);

    const shallow = cloneRepo(`tensor::${url}`, { args: ['--depth', '1'] });
    expect(shallow.git(['rev-list', '--count', 'HEAD']).stdout.trim()).toBe('1');
    expectBytes(shallow, tuned(1));

    const refs = hostRefs(host, 'options');
    a.write('model.safetensors', tuned(2));
    a.commit(['model.safetensors'], 'not pushed');
    const dry = a.git(['push', '--dry-run', 'origin', 'main']);
    expect(dry.stderr).toMatch(/main -> main/);
    expect(hostRefs(host, 'options')).toEqual(refs); // nothing uploaded, nothing moved

    // The shallow clone's view of main is stale once a pushes: a lease on it refuses to overwrite.
    a.git(['push', 'origin', 'main']);
    shallow.write('model.safetensors', tuned(3));
    shallow.commit(['model.safetensors'], 'rewrite');
    const lease = shallow.git(['push', '--force-with-lease', 'origin', 'main'], { allowFail: true });
    expect(lease.status).toBe(1);
    expect(lease.stderr).toMatch(/stale info/);
    expect(hostRefs(host, 'options').get('refs/heads/main')).toBe(a.git(['rev-parse', 'HEAD']).stdout.trim());
  });

  it('two clones pushing at once both land; a stale third push is rejected as git would reject it', async () => {
    const { repo: a, url } = pusher('concurrent');
    a.write('model.safetensors', base);
    a.commit(['model.safetensors'], 'base');
    a.git(['push', '-u', 'origin', 'main']);

    const clones = [cloneRepo(`tensor::${url}`), cloneRepo(`tensor::${url}`)];
    clones.forEach((c, k) => {
      c.git(['config', 'tensor.packSizeLimit', '16k']);
      c.git(['switch', '-q', '-c', `ft-${k}`]);
      c.write('model.safetensors', tuned(k + 2));
      c.commit(['model.safetensors'], `fine-tune ${k}`);
    });
    const results = await Promise.all(clones.map((c, k) => runAsync('git', ['push', 'origin', `ft-${k}`], c.dir, c.env).done));
    results.forEach((r) => expect(r.status, r.stderr).toBe(0));

    const c = cloneRepo(`tensor::${url}`);
    for (const k of [0, 1]) {
      c.git(['switch', '-q', `ft-${k}`]);
      expectBytes(c, tuned(k + 2));
    }

    // a moves main; clone 0, still at the old main, commits on main and pushes: git's own rejection.
    a.write('model.safetensors', tuned(9));
    a.commit(['model.safetensors'], 'moved on');
    a.git(['push']);
    const late = clones[0]!;
    late.git(['switch', '-q', 'main']);
    late.write('model.safetensors', tuned(8));
    late.commit(['model.safetensors'], 'stale');
    const rejected = late.git(['push', 'origin', 'main'], { allowFail: true });
    expect(rejected.status).toBe(1);
    expect(rejected.stderr).toMatch(/\[rejected\]\s+main -> main \((fetch first|non-fast-forward)\)/);
    expect(hostRefs(host, 'concurrent', 'refs/heads/main').get('refs/heads/main')).toBe(a.git(['rev-parse', 'HEAD']).stdout.trim());
  });
});
