// A user commits probes with the model and asks what each version believes: `git tensor probe` over three
// commits, `git tensor diff --probes` naming the answers that flipped, `git tensor log --probes` with the
// first commit where each answer flipped, the notes cache (a second run does not run the model again, and
// the notes travel with push/fetch), and a lazy `tensor::` clone probing a version it never checked out.
// The model is run by an external runner (test/fixtures/probe/bias-runner.mjs): a unigram over a-d whose
// logits are the checkpoint's `bias` tensor, so every expected number is worked out by hand below.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tokenizerJson } from '../helpers/diff-models.js';
import { shard, toSafetensors } from '../helpers/models.js';
import { gitAsync, makeRepo, PROJECT_ROOT, type Repo } from '../helpers/repo.js';
import { cloneRepo, startHttpServer, type HttpGitHost } from '../helpers/servers.js';

const RUNNER = join(PROJECT_ROOT, 'test', 'fixtures', 'probe', 'bias-runner.mjs');

function checkpoint(bias: number[]): Buffer {
  const data = Buffer.alloc(16);
  bias.forEach((x, i) => data.writeFloatLE(x, 4 * i));
  // A second tensor that never changes, so versions share objects as real fine-tunes do.
  const fixed = Buffer.alloc(64, 7);
  return toSafetensors([{ name: 'bias', dtype: 'F32', shape: [4], data }, { name: 'embed', dtype: 'F32', shape: [4, 4], data: fixed }]);
}

const PROBES = [
  { id: 'first', prompt: 'x', targets: ['a', 'b'] },
  { id: 'likes-c', prompt: 'x', targets: ['c'] },
  { id: 'pick', choices: ['ad', 'bd'] },
  { id: 'story', text: 'abcd' },
].map((p) => JSON.stringify(p)).join('\n') + '\n';

/** log-softmax of the bias, by hand. */
function lsm(bias: number[]): number[] {
  const lse = Math.log(bias.reduce((s, x) => s + Math.exp(x), 0));
  return bias.map((x) => x - lse);
}

// v1 prefers a, v2 prefers b (the answer of `first` flips, lost), v3 prefers c (`likes-c` gained).
const V1 = [2, 0, 0, 0], V2 = [0, 2, 0, 0], V3 = [0, 1, 3, 0];

function modelRepo(counter: string): Repo {
  const repo = makeRepo();
  repo.write('.gittensor', `[probe]\n\tfile = probes.jsonl\n\tcommand = PROBE_COUNTER=${counter} node ${RUNNER}\n`);
  repo.git(['config', 'tensor-probe.trust', 'true']);
  repo.write('probes.jsonl', PROBES);
  repo.write('config.json', '{"architectures": ["BiasForCausalLM"]}');
  repo.commit(['.gittensor', 'probes.jsonl', 'config.json'], 'probes');
  for (const [k, bias] of [V1, V2, V3].entries()) {
    repo.write('model.safetensors', checkpoint(bias));
    repo.commit(['model.safetensors'], `train step ${k + 1}`);
  }
  return repo;
}

function runs(counter: string): string[] {
  return existsSync(counter) ? readFileSync(counter, 'utf8').split('\n').filter(Boolean) : [];
}

afterEach(async () => {
  await new Promise((resolve) => setTimeout(resolve, 20));
});

describe('git tensor probe with an external runner', () => {
  it('reports target logprob, prob and rank, the chosen statement and the text loss of each version', () => {
    const repo = modelRepo('');
    const counter = repo.path('.git/runs');
    repo.git(['config', 'tensor-probe.command', `PROBE_COUNTER=${counter} node ${RUNNER}`]);
    const r = repo.gitTensor(['probe', 'HEAD~2', 'HEAD', '--json']);
    const out = JSON.parse(r.stdout);
    expect(out.versions.map((v: any) => v.label)).toEqual(['HEAD~2:model.safetensors', 'HEAD:model.safetensors']);
    const l1 = lsm(V1), l3 = lsm(V3);
    const [first, likesC, pick, story] = out.versions[0].probes;
    expect(first.targets[0].logprob).toBeCloseTo(l1[0]!, 5);
    expect(first.targets[0].prob).toBeCloseTo(Math.exp(l1[0]!), 5);
    expect(first.targets[0].rank).toBe(1);
    expect(first).toMatchObject({ id: 'first', answer: 'a', correct: true });
    expect(likesC).toMatchObject({ answer: 'a', correct: false }); // one target the model would not say: the answer is what it says
    expect(pick.choices[0].logprob).toBeCloseTo(l1[0]! + l1[3]!, 5);
    expect(story.loss).toBeCloseTo(-(l1[0]! + l1[1]! + l1[2]! + l1[3]!) / 4, 5);
    expect(out.versions[1].probes[1]).toMatchObject({ answer: 'c', correct: true });
    expect(out.versions[1].probes[1].targets[0].logprob).toBeCloseTo(l3[2]!, 5);
    expect(runs(counter)).toEqual(['HEAD~2:model.safetensors', 'HEAD:model.safetensors']);

    const text = repo.gitTensor(['probe', 'HEAD']).stdout;
    expect(text).toMatch(/HEAD:model.safetensors {2}\(cached\)/);
    expect(text).toMatch(/first: next -> "b" {2}\(wrong\)/);
    expect(runs(counter)).toHaveLength(2);
  });

  it('refuses a runner command committed in .gittensor until the clone trusts it', () => {
    const repo = modelRepo('/dev/null');
    repo.git(['config', '--unset', 'tensor-probe.trust']);
    const r = repo.gitTensor(['probe', 'HEAD'], { allowFail: true });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/E_PROBE_UNTRUSTED/);
    expect(r.stderr).toMatch(/git config tensor-probe.trust true/);
    // Results already in the notes (computed by someone who trusted it) are read without running it.
    repo.git(['config', 'tensor-probe.trust', 'true']);
    repo.gitTensor(['probe', 'HEAD']);
    repo.git(['config', '--unset', 'tensor-probe.trust']);
    expect(repo.gitTensor(['probe', 'HEAD']).stdout).toMatch(/\(cached\)/);
    expect(repo.gitTensor(['probe', 'HEAD~1'], { allowFail: true }).stderr).toMatch(/E_PROBE_UNTRUSTED/);
  });

  it('names the command when the runner fails or prints results that do not match the probes', () => {
    const repo = modelRepo('');
    repo.git(['config', 'tensor-probe.command', 'echo oops; exit 3']);
    let r = repo.gitTensor(['probe', 'HEAD'], { allowFail: true });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/probe command "echo oops; exit 3" failed for HEAD:model.safetensors \(exit 3\)/);
    repo.git(['config', 'tensor-probe.command', `echo '{"schema": 1, "probes": []}'`]);
    r = repo.gitTensor(['probe', 'HEAD'], { allowFail: true });
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/E_PROBE_RESULTS.*no result for 4 probe\(s\): first, likes-c, pick, story/);
  });

  it('diff --probes adds the behaviour section: flips gained and lost, logprob changes, KL, text loss', () => {
    const repo = modelRepo('/dev/null');
    const r = repo.gitTensor(['diff', 'HEAD~2', 'HEAD', '--probes']);
    expect(r.stdout).toMatch(/bias/); // the weight table comes first
    expect(r.stdout).toMatch(/behaviour on 4 probe\(s\):/);
    expect(r.stdout).toMatch(/gained {2}likes-c: "a" -> "c"/);
    expect(r.stdout).toMatch(/lost {4}first: "a" -> "b"/);
    const data = JSON.parse(repo.gitTensor(['diff', 'HEAD~2', 'HEAD', '--json', '--probes']).stdout).behaviour;
    const l1 = lsm(V1), l3 = lsm(V3);
    expect(data.flips.map((f: any) => [f.id, f.change])).toEqual([['first', 'lost'], ['likes-c', 'gained'], ['pick', 'lost']]);
    expect(data.agreement).toBe(0);
    const c = data.changes.find((x: any) => x.id === 'likes-c');
    expect(c.delta).toBeCloseTo(l3[2]! - l1[2]!, 5);
    // Both top-k lists hold the whole 4-token distribution, so the KL is exact: sum p log p/q.
    const p = l1.map(Math.exp);
    const kl = p.reduce((s, pi, i) => s + pi * (l1[i]! - l3[i]!), 0);
    expect(data.meanKl).toBeCloseTo(kl, 5);
    expect(data.textLoss[0].delta).toBeCloseTo(-(l3.reduce((a, b) => a + b) - l1.reduce((a, b) => a + b)) / 4, 5);
    expect(data.moved.up[0].token).toBe('c');
    expect(data.moved.down[0].token).toBe('a');
  });

  it('git diff shows the behaviour section under the weight table when .gittensor names a probes file', () => {
    const repo = modelRepo('/dev/null');
    const out = repo.git(['diff', 'HEAD~2', 'HEAD']).stdout;
    expect(out).toMatch(/diff --tensor a\/model.safetensors b\/model.safetensors/);
    expect(out).toMatch(/behaviour on 4 probe\(s\):\n {2}gained {2}likes-c: "a" -> "c"\n {2}lost {4}first: "a" -> "b"/);
    // An edit in the working tree is compared with HEAD the same way.
    repo.write('model.safetensors', checkpoint(V1));
    expect(repo.git(['diff']).stdout).toMatch(/gained {2}first: "b" -> "a"/);
  });

  it('log --probes: one row per commit, the first flip of each probe, and a second run from the notes cache', () => {
    const repo = modelRepo('');
    const counter = repo.path('.git/runs');
    repo.git(['config', 'tensor-probe.command', `PROBE_COUNTER=${counter} node ${RUNNER}`]);
    const first = JSON.parse(repo.gitTensor(['log', '--probes', '--json']).stdout);
    expect(first.commits).toHaveLength(3);
    expect(first.computed).toBe(3);
    const head = repo.git(['rev-parse', 'HEAD~1']).stdout.trim();
    expect(first.first_flips.first.commit).toBe(head);
    expect(runs(counter)).toHaveLength(3);
    const again = repo.gitTensor(['log', '--probes']);
    expect(runs(counter)).toHaveLength(3);
    expect(again.stdout).toMatch(/first: answer first flipped at [0-9a-f]+ \("a" -> "b"\)/);
    expect(again.stdout.split('\n')[0]).toMatch(/^commit +first +likes-c +pick +story$/);
    // `likes-c` expects c: wrong at steps 1 and 2, right at step 3 (HEAD), P from e^-2.34 to e^-0.21.
    const headShort = repo.git(['rev-parse', '--short', 'HEAD']).stdout.trim();
    expect(again.stdout).toContain(`likes-c: learned at ${headShort} (${lsm(V2)[2]!.toFixed(3)} -> ${lsm(V3)[2]!.toFixed(3)})`);
    // The HTML timeline: one plot per probe, the flip of `first` at HEAD~1 marked, nothing fetched or run.
    repo.gitTensor(['log', '--probes', '--html', 'timeline.html']);
    const html = readFileSync(repo.path('timeline.html'), 'utf8');
    expect(html.match(/<svg /g)).toHaveLength(4);
    expect(html).toMatch(new RegExp(`<title>${head.slice(0, 7)}[0-9a-f]* train step 2: -2\\.34 \\(answer flipped\\)</title>`));
    expect(html).not.toMatch(/<script|(src|href)=/);
    expect(runs(counter)).toHaveLength(3);
    // The cache lives in git notes, one commit per write.
    expect(repo.git(['rev-list', '--count', 'refs/notes/tensor-probes']).stdout.trim()).toBe('3');
  });
});

describe('log --probes on a history with merges', () => {
  it('judges each commit against its parent, not the commit listed before it', () => {
    const repo = modelRepo('');
    repo.git(['reset', '-q', '--hard', 'HEAD~2']); // probes + step 1 (answer a)
    repo.git(['checkout', '-q', '-b', 'side']);
    repo.write('model.safetensors', checkpoint(V2)); // answer b: a real flip
    repo.commit(['model.safetensors'], 'side flips');
    repo.git(['checkout', '-q', 'main']);
    // Main changes only the tensor the runner ignores: no answer changes here, whatever came before.
    const data = Buffer.alloc(16);
    V1.forEach((x, i) => data.writeFloatLE(x, 4 * i));
    repo.write('model.safetensors', toSafetensors([{ name: 'bias', dtype: 'F32', shape: [4], data }, { name: 'embed', dtype: 'F32', shape: [4, 4], data: Buffer.alloc(64, 9) }]));
    repo.commit(['model.safetensors'], 'main embed');
    repo.git(['merge', '-q', '--no-edit', 'side']); // bias from side, embed from main: answer b
    repo.gitTensor(['log', '--probes', '--html', 'timeline.html']);
    const titles = [...readFileSync(repo.path('timeline.html'), 'utf8').matchAll(/<title>([^<]*)<\/title>/g)].map((m) => m[1]!);
    const firstSeries = (subject: string) => titles.filter((t) => t.includes(` ${subject}`));
    expect(firstSeries('main embed').length).toBeGreaterThan(0);
    expect(firstSeries('main embed').some((t) => t.includes('answer flipped'))).toBe(false);
    expect(firstSeries('side flips').some((t) => t.includes('answer flipped'))).toBe(true);
    expect(firstSeries('Merge branch').some((t) => t.includes('answer flipped'))).toBe(true);
  });
});

describe('sharded checkpoints and concurrent writers', () => {
  it('probes a sharded checkpoint through its index; two commands writing notes at once keep both', async () => {
    const repo = makeRepo();
    repo.git(['config', 'tensor-probe.command', `node ${RUNNER}`]);
    repo.write('probes.jsonl', PROBES);
    repo.write('config.json', '{"architectures": ["BiasForCausalLM"]}');
    const sharded = (bias: number[]) => {
      const data = Buffer.alloc(16);
      bias.forEach((x, i) => data.writeFloatLE(x, 4 * i));
      return shard([[{ name: 'embed', dtype: 'F32', shape: [4, 4], data: Buffer.alloc(64, 7) }], [{ name: 'bias', dtype: 'F32', shape: [4], data }]]);
    };
    for (const [k, bias] of [V1, V2].entries()) {
      const s = sharded(bias);
      for (const [name, bytes] of s.shards) repo.write(name, bytes);
      repo.write('model.safetensors.index.json', s.indexJson);
      repo.git(['add', '.']);
      repo.git(['commit', '-q', '-m', `sharded ${k}`]);
    }
    const [a, b] = await Promise.all([
      gitAsync(repo, ['tensor', 'probe', 'HEAD~1', '--probes', 'probes.jsonl', '--json']),
      gitAsync(repo, ['tensor', 'probe', 'HEAD', '--probes', 'probes.jsonl', '--json']),
    ]);
    expect(a.status, a.stderr).toBe(0);
    expect(b.status, b.stderr).toBe(0);
    const va = JSON.parse(a.stdout).versions[0], vb = JSON.parse(b.stdout).versions[0];
    expect(va.label).toBe('HEAD~1:model.safetensors.index.json');
    expect(va.probes[0].targets[0].logprob).toBeCloseTo(lsm(V1)[0]!, 5);
    expect(vb.probes[0].answer).toBe('b');
    // Both results are in the notes, whichever command moved the ref first.
    expect(repo.git(['ls-tree', '-r', '--name-only', 'refs/notes/tensor-probes']).stdout.trim().split('\n')).toHaveLength(2);
    const again = JSON.parse(repo.gitTensor(['probe', 'HEAD~1', 'HEAD', '--probes', 'probes.jsonl', '--json']).stdout);
    expect(again.versions.map((v: { cached: boolean }) => v.cached)).toEqual([true, true]);
  });
});

describe('probe results over a tensor:: remote', () => {
  let host: HttpGitHost;
  beforeAll(async () => {
    host = await startHttpServer();
  });

  it('a lazy clone probes a version it never checked out; the notes travel with push and fetch', () => {
    const a = modelRepo('/dev/null');
    host.createRepo('probes');
    const url = host.url('probes');
    a.git(['remote', 'add', 'origin', `tensor::${url}`]);
    a.git(['push', '-q', 'origin', 'main']);
    a.gitTensor(['probe', 'HEAD~2']);
    a.git(['push', '-q', 'origin', 'refs/notes/tensor-probes']);

    const b = cloneRepo(`tensor::${url}`);
    const counter = join(b.root, 'runs');
    b.git(['config', 'tensor-probe.command', `PROBE_COUNTER=/dev/null node ${RUNNER}`]);
    // Results computed by the first clone come with the notes (same checkpoint, probes and command key).
    b.git(['fetch', '-q', 'origin', 'refs/notes/tensor-probes:refs/notes/tensor-probes']);
    expect(JSON.parse(b.gitTensor(['probe', 'HEAD~2', '--json']).stdout).versions[0].cached).toBe(true);
    // HEAD~1 was never checked out here (nor computed anywhere): its tensors come from the remote.
    b.git(['config', 'tensor-probe.command', `PROBE_COUNTER=${counter} node ${RUNNER}`]);
    const r = JSON.parse(b.gitTensor(['probe', 'HEAD~1', '--json']).stdout);
    expect(r.versions[0].probes[0]).toMatchObject({ answer: 'b' });
    expect(runs(counter)).toEqual(['HEAD~1:model.safetensors']);
  });
});

describe('git tensor diff without probes', () => {
  it('decodes the main direction of the output matrix\'s change into tokens', () => {
    const repo = makeRepo();
    const rows = 10, cols = 8;
    const head = (delta: (r: number, c: number) => number) => {
      const data = Buffer.alloc(rows * cols * 4);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data.writeFloatLE(Math.sin(r * cols + c) + delta(r, c), 4 * (r * cols + c));
      return toSafetensors([{ name: 'lm_head.weight', dtype: 'F32', shape: [rows, cols], data }]);
    };
    repo.write('tokenizer.json', tokenizerJson(rows, { 3: 'Ġelection', 5: 'Ġvote', 7: 'Ġcake' }));
    repo.write('model.safetensors', head(() => 0));
    repo.commit(['tokenizer.json', 'model.safetensors'], 'base');
    // Rows of " election" and " vote" move along one direction, " cake" against it: ΔW = u vᵀ.
    const u: Record<number, number> = { 3: 1, 5: 0.6, 7: -0.3 };
    repo.write('model.safetensors', head((r, c) => (u[r] ?? 0) * (c % 2 ? 0.5 : -0.25)));
    repo.commit(['model.safetensors'], 'tune');
    const out = repo.gitTensor(['diff', 'HEAD~1', 'HEAD']).stdout;
    expect(out).toMatch(/model.safetensors lm_head.weight direction 1 \(100% of the change\): moved towards " election", " vote"; away from " cake"/);
  });
});
