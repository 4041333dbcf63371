// The merge guard on the demo models (scripts/demo-models): a BERT base and five days of sparse news
// updates; day 5 damages the protected static fact "A Platonic solid is a [MASK] regular polyhedron."
// with a mask disjoint from every other day's, so only the guard can notice. Expected probe values come
// from the demo's manifest.json (the make-demo-models.py float64 PyTorch reference), merged bytes from
// element-wise arithmetic in the test, and whether a resolved merge keeps the protected probes from
// `git tensor probe` (the scorer, not the guard).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCheckpoint } from '../helpers/merge-models.js';
import { toSafetensors } from '../helpers/models.js';
import { makeRepo, PROJECT_ROOT, type Repo } from '../helpers/repo.js';
import type { DType } from '../../src/format/dtype.js';

const DEMO = join(PROJECT_ROOT, 'scripts', 'demo-models');
const FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json'];
const CKPT = 'model/model.safetensors';
const manifest = existsSync(join(DEMO, 'manifest.json')) ? JSON.parse(readFileSync(join(DEMO, 'manifest.json'), 'utf8')) : null;
const probeLines = existsSync(join(DEMO, 'probes.jsonl')) ? readFileSync(join(DEMO, 'probes.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; protect?: boolean; max_drop?: number }) : [];
const PROTECTED = probeLines.filter((p) => p.protect);
const CONVEX = 'static/platonic-convex';

const checkpoint = (name: string) => readFileSync(name === 'base' ? join(DEMO, 'base', 'model.safetensors') : join(DEMO, name, 'sparse', 'model.safetensors'));

/** A repository with the demo base committed on main as model/, the probes and `.gittensor` naming them. */
function demoRepo(opts: { probes?: boolean; config?: (c: Record<string, unknown>) => void } = {}): Repo {
  const repo = makeRepo();
  for (const f of FILES) repo.write(`model/${f}`, readFileSync(join(DEMO, 'base', f)));
  if (opts.config) {
    const c = JSON.parse(readFileSync(join(DEMO, 'base', 'config.json'), 'utf8'));
    opts.config(c);
    repo.write('model/config.json', JSON.stringify(c));
  }
  repo.write(CKPT, checkpoint('base'));
  const paths = [CKPT, ...FILES.map((f) => `model/${f}`)];
  if (opts.probes !== false) {
    repo.write('probes.jsonl', readFileSync(join(DEMO, 'probes.jsonl')));
    repo.write('.gittensor', '[probe]\n\tfile = probes.jsonl\n');
    paths.push('probes.jsonl', '.gittensor');
  }
  repo.commit(paths, 'demo base');
  return repo;
}

/** Commits `bytes` as the checkpoint on a new branch `name` made from `from`, then returns to main. */
function branch(repo: Repo, name: string, from: string, bytes: Buffer): void {
  repo.git(['checkout', '-q', '-b', name, from]);
  repo.write(CKPT, bytes);
  repo.commit([CKPT], name);
  repo.git(['checkout', '-q', 'main']);
}

function onMain(repo: Repo, bytes: Buffer, message: string): void {
  repo.write(CKPT, bytes);
  repo.commit([CKPT], message);
}

/** The float32 data section of a demo checkpoint (every demo tensor is F32, and all share one header). */
function floats(bytes: Buffer): { header: Buffer; data: Uint32Array } {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = bytes.subarray(0, 8 + n);
  const body = bytes.subarray(8 + n);
  return { header, data: new Uint32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length)) };
}

/** Each protected probe's first-target logprob, by `git tensor probe` (a revision, or --path for a file). */
function protectedValues(repo: Repo, args: string[]): Map<string, number> {
  const out = JSON.parse(repo.gitTensor(['probe', '--probes', 'probes.jsonl', '--json', ...args], { timeoutMs: 120_000 }).stdout);
  const probes = out.versions[0].probes as { id: string; targets: { logprob: number }[] }[];
  return new Map(probes.filter((p) => PROTECTED.some((q) => q.id === p.id)).map((p) => [p.id, p.targets[0]!.logprob]));
}

function expectHeld(before: Map<string, number>, after: Map<string, number>): void {
  expect(after.size).toBe(PROTECTED.length);
  for (const p of PROTECTED) expect(before.get(p.id)! - after.get(p.id)!, p.id).toBeLessThanOrEqual(p.max_drop ?? 1.0);
}

const status = (repo: Repo) => repo.git(['status', '--porcelain', '--untracked-files=no']).stdout;

describe.skipIf(!manifest || !PROTECTED.length)('merge guard (demo models)', () => {
  it('refuses day 5 merged into base + day 1 as a conflict naming the probe and the module; resolve guards too; --abort restores; --keep-ours or --no-guard finishes', () => {
    const repo = demoRepo();
    branch(repo, 'day5', 'main', checkpoint('day5'));
    onMain(repo, checkpoint('day1'), 'day1');
    const head = repo.git(['rev-parse', 'HEAD']).stdout.trim();

    const r = repo.git(['merge', '--no-edit', 'day5'], { allowFail: true, timeoutMs: 120_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(CONVEX);
    expect(r.stderr).toMatch(/responsible module\(s\)[^\n]*: bert\.encoder\.layer\.\d\.(intermediate|output)\.dense/);
    expect(status(repo)).toBe(`UU ${CKPT}\n`);
    // The working file is ours (day 1): a careless `git add` keeps what main had.
    expect(repo.read(CKPT).equals(checkpoint('day1'))).toBe(true);

    // `conflicts` shows the report; the drop is the reference's: ln P(day1) - ln P(day1 + day5).
    const c = repo.gitTensor(['conflicts', '--json'], { allowFail: true });
    expect(c.status).toBe(1);
    const guard = JSON.parse(c.stdout).files[0].guard;
    expect(guard.held).toBe(false);
    expect(guard.check.regressed.map((x: { id: string }) => x.id)).toEqual([CONVEX]);
    const want = Math.log(manifest.probe_values['day1/sparse'][CONVEX]) - Math.log(manifest.probe_values['day1+day5/sparse'][CONVEX]);
    expect(Math.abs(guard.check.regressed[0].drop - want)).toBeLessThan(2e-3);

    // resolve guards its result as the driver did; --no-guard accepts it: the exact union of both days.
    const again = repo.gitTensor(['resolve', CKPT, '--strategy', 'ours'], { allowFail: true, timeoutMs: 120_000 });
    expect(again.status).toBe(1);
    expect(again.stdout).toContain(CONVEX);
    expect(status(repo)).toBe(`UU ${CKPT}\n`);
    // No strategy helps where nothing conflicts: auto prints the table and exits 1, the file stays unmerged.
    const auto = repo.gitTensor(['resolve', CKPT, '--strategy', 'auto', '--json'], { allowFail: true, timeoutMs: 180_000 });
    expect(auto.status).toBe(1);
    const rows = JSON.parse(auto.stdout).candidates as { status: string; worstDrop: number }[];
    expect(rows.length).toBe(7);
    for (const row of rows) expect([row.status, Math.abs(row.worstDrop - want) < 2e-3]).toEqual(['regressed', true]);
    expect(status(repo)).toBe(`UU ${CKPT}\n`);
    repo.gitTensor(['resolve', CKPT, '--no-guard'], { timeoutMs: 120_000 });
    expect(status(repo)).toBe(`M  ${CKPT}\n`);
    const [o, a, b] = ['base', 'day1', 'day5'].map((n) => floats(checkpoint(n)));
    const union = a!.data.map((x, i) => (b!.data[i] !== o!.data[i] ? b!.data[i]! : x));
    expect(Buffer.from(floats(repo.read(CKPT)).data.buffer).equals(Buffer.from(union.buffer))).toBe(true);

    repo.git(['merge', '--abort']);
    expect(status(repo)).toBe('');
    expect(repo.git(['rev-parse', 'HEAD']).stdout.trim()).toBe(head);
    expect(repo.read(CKPT).equals(checkpoint('day1'))).toBe(true);

    // Again, finished by taking the responsible modules from ours: the protected probes hold.
    repo.git(['merge', '--no-edit', 'day5'], { allowFail: true, timeoutMs: 120_000 });
    const keep = (guard.responsible as string[]).flatMap((m) => ['--keep-ours', `${m}.*`]);
    const res = repo.gitTensor(['resolve', CKPT, ...keep], { timeoutMs: 120_000 });
    expect(res.stdout).toMatch(/protected probe\(s\) held/);
    expect(status(repo)).toBe(`M  ${CKPT}\n`);
    expectHeld(protectedValues(repo, ['HEAD']), protectedValues(repo, ['--path', CKPT]));
    repo.git(['commit', '-q', '--no-edit']);
    expect(repo.gitTensor(['verify']).stdout).toMatch(/^verify: HEAD: held: 12 protected probe check/);
  });

  it('the pre-merge-commit hook refuses day 5 when git takes it whole; a fast-forward is caught by verify', () => {
    const repo = demoRepo();
    branch(repo, 'day1', 'main', checkpoint('day1'));
    branch(repo, 'day5', 'main', checkpoint('day5'));
    const head = repo.git(['rev-parse', 'HEAD']).stdout.trim();

    // Ours is the merge base: git takes theirs' file whole and never runs the merge driver.
    const r = repo.git(['merge', '--no-ff', '--no-edit', 'day5'], { allowFail: true, timeoutMs: 120_000 });
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toContain(CONVEX);
    expect(repo.git(['rev-parse', 'HEAD']).stdout.trim()).toBe(head);
    repo.git(['merge', '--abort']);
    expect(status(repo)).toBe('');
    expect(repo.read(CKPT).equals(checkpoint('base'))).toBe(true);

    // The same for a harmless day: the hook lets the merge commit through.
    repo.git(['merge', '--no-ff', '--no-edit', 'day1'], { timeoutMs: 120_000 });
    expect(repo.git(['rev-list', '--parents', '-1', 'HEAD']).stdout.trim().split(' ')).toHaveLength(3);
    const held = repo.gitTensor(['verify']);
    expect(held.stdout).toMatch(/^verify: HEAD: held: 12 protected probe check\(s\) on 1 checkpoint\(s\) against HEAD\^1/);

    // A fast-forward runs no hook at all: verify (CI, pre-push) is what catches it.
    repo.git(['reset', '-q', '--hard', head]);
    repo.git(['merge', '--ff-only', 'day5']);
    const v = repo.gitTensor(['verify'], { allowFail: true });
    expect(v.status).toBe(1);
    expect(v.stdout).toContain(CONVEX);
    const json = JSON.parse(repo.gitTensor(['verify', '--json'], { allowFail: true }).stdout);
    expect(json.held).toBe(false);
    expect(json.checkpoints[0].check.regressed[0].id).toBe(CONVEX);
    expect(repo.gitTensor(['verify', '--against', 'day1', 'day1']).stdout).toMatch(/nothing to verify/);
    expect(repo.gitTensor(['verify', 'day1']).status).toBe(0);
    expect(repo.gitTensor(['verify', 'main', '--against', 'day1'], { allowFail: true }).status).toBe(1);
  });

  it('merges disjoint days 1 and 3 through the guard, bit-exact base + both updates', () => {
    const repo = demoRepo();
    branch(repo, 'day3', 'main', checkpoint('day3'));
    onMain(repo, checkpoint('day1'), 'day1');
    const r = repo.git(['merge', '--no-edit', 'day3'], { timeoutMs: 120_000 });
    expect(r.stderr).toMatch(/merge guard: 12 protected probe\(s\) held/);
    expect(repo.git(['rev-list', '--parents', '-1', 'HEAD']).stdout.trim().split(' ')).toHaveLength(3);
    const [o, a, b] = ['base', 'day1', 'day3'].map((n) => floats(checkpoint(n)));
    const want = a!.data.map((x, i) => (b!.data[i] !== o!.data[i] ? b!.data[i]! : x));
    const got = floats(repo.read(CKPT));
    expect(got.header.equals(o!.header)).toBe(true);
    expect(Buffer.from(got.data.buffer).equals(Buffer.from(want.buffer))).toBe(true);
  });

  it('resolve --strategy auto settles the day 2 / day 4 conflict with a candidate that keeps every protected probe', () => {
    const repo = demoRepo();
    branch(repo, 'day4', 'main', checkpoint('day4'));
    onMain(repo, checkpoint('day2'), 'day2');
    const r = repo.git(['merge', '--no-edit', 'day4'], { allowFail: true, timeoutMs: 120_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/CONFLICT bert\./);
    const auto = repo.gitTensor(['resolve', CKPT, '--strategy', 'auto'], { timeoutMs: 180_000 });
    expect(auto.stdout).toMatch(/candidate\s+protected worst drop\s+others mean\s+result/);
    expect(auto.stdout).toMatch(/held, chosen/);
    expect(status(repo)).toBe(`M  ${CKPT}\n`);
    expectHeld(protectedValues(repo, ['HEAD']), protectedValues(repo, ['--path', CKPT]));

    // Candidates come from .gittensor when it lists them; the chosen one is among them.
    repo.git(['merge', '--abort']);
    repo.write('.gittensor', '[probe]\n\tfile = probes.jsonl\n[resolve "auto"]\n\tcandidate = theirs\n\tcandidate = average weights=0.7,0.3\n');
    repo.commit(['.gittensor'], 'auto candidates');
    repo.git(['merge', '--no-edit', 'day4'], { allowFail: true, timeoutMs: 120_000 });
    const json = JSON.parse(repo.gitTensor(['resolve', CKPT, '--strategy', 'auto', '--json'], { timeoutMs: 180_000 }).stdout);
    expect(json.candidates.map((c: { candidate: string }) => c.candidate)).toEqual(['theirs', 'average weights=0.7,0.3']);
    expect(['theirs', 'average weights=0.7,0.3']).toContain(json.chosen);
    repo.git(['commit', '-q', '--no-edit']);
  });

  it('protect: conflicting elements go back to base in the modules responsible for a regression', () => {
    // Ours moved each element day 5 changes a little the other way, so every change of day 5 conflicts
    // and TIES elects day 5's sign: its whole damage. protect must put those elements back to base.
    const base = floats(checkpoint('base'));
    const day5 = floats(checkpoint('day5'));
    const f = (u: Uint32Array) => new Float32Array(u.buffer);
    const [o, t] = [f(base.data), f(day5.data)];
    const ours = new Float32Array(o.length);
    for (let i = 0; i < o.length; i++) ours[i] = t[i] === o[i] ? o[i]! : o[i]! - 0.05 * (t[i]! - o[i]!);
    const oursBytes = Buffer.concat([base.header, Buffer.from(ours.buffer)]);

    const repo = demoRepo();
    branch(repo, 'day5', 'main', checkpoint('day5'));
    onMain(repo, oursBytes, 'ours: the other way');
    const ties = repo.git(['merge', '--no-edit', 'day5'], { allowFail: true, env: { GIT_TENSOR_MERGE: 'ties' }, timeoutMs: 120_000 });
    expect(ties.status).not.toBe(0);
    expect(ties.stderr).toContain(CONVEX);
    repo.git(['merge', '--abort']);

    const p = repo.git(['merge', '--no-edit', 'day5'], { env: { GIT_TENSOR_MERGE: 'protect' }, timeoutMs: 120_000 });
    const named = /protect: conflicting elements of \d+ tensor\(s\) set back to base: (.*)/.exec(p.stderr)?.[1]?.split(', ') ?? [];
    expect(named.length).toBeGreaterThan(0);
    expectHeld(protectedValues(repo, ['HEAD^1']), protectedValues(repo, ['HEAD']));
    // In the named tensors every conflicting element (each one day 5 changed) is base's exactly.
    const merged = repo.read(CKPT);
    const header = JSON.parse(merged.subarray(8, 8 + Number(merged.readBigUInt64LE(0))).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
    const got = floats(merged).data;
    for (const name of named) {
      const [s, e] = header[name]!.data_offsets.map((x) => x / 4) as [number, number];
      for (let i = s; i < e; i++) if (day5.data[i] !== base.data[i]) expect(got[i], `${name}[${i - s}]`).toBe(base.data[i]);
    }

    // The same through resolve, after a plain conflict.
    repo.git(['reset', '-q', '--hard', 'HEAD^1']);
    expect(repo.git(['merge', '--no-edit', 'day5'], { allowFail: true, timeoutMs: 120_000 }).status).not.toBe(0);
    const res = repo.gitTensor(['resolve', CKPT, '--strategy', 'protect'], { timeoutMs: 120_000 });
    expect(res.stdout).toMatch(/protect: conflicting elements of \d+ tensor\(s\) set back to base/);
    expect(repo.read(CKPT).equals(merged)).toBe(true);
  });

  it('guards a sharded checkpoint: the merged shard is probed with the other shard from HEAD', () => {
    // Two shards: layer 1 in the second, everything else in the first, as Hugging Face's index names them.
    const SHARDS = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    const split = (bytes: Buffer): Buffer[] => {
      const all = [...readCheckpoint(bytes).tensors].map(([name, t]) => ({ name, dtype: t.dtype as DType, shape: t.shape, data: t.data }));
      const second = (n: string) => n.startsWith('bert.encoder.layer.1.');
      return [toSafetensors(all.filter((t) => !second(t.name)), { format: 'pt' }), toSafetensors(all.filter((t) => second(t.name)), { format: 'pt' })];
    };
    const writeShards = (repo: Repo, bytes: Buffer) => split(bytes).forEach((b, i) => repo.write(`model/${SHARDS[i]}`, b));
    const repo = makeRepo();
    for (const f of FILES) repo.write(`model/${f}`, readFileSync(join(DEMO, 'base', f)));
    const names = [...readCheckpoint(checkpoint('base')).tensors.keys()];
    repo.write('model/model.safetensors.index.json', JSON.stringify({ metadata: {}, weight_map: Object.fromEntries(names.map((n) => [n, SHARDS[n.startsWith('bert.encoder.layer.1.') ? 1 : 0]])) }));
    writeShards(repo, checkpoint('base'));
    repo.write('probes.jsonl', readFileSync(join(DEMO, 'probes.jsonl')));
    repo.write('.gittensor', '[probe]\n\tfile = probes.jsonl\n');
    repo.git(['add', '-A']);
    repo.git(['commit', '-qm', 'sharded base']);
    repo.git(['checkout', '-q', '-b', 'day5']);
    writeShards(repo, checkpoint('day5'));
    repo.git(['commit', '-qam', 'day5']);
    repo.git(['checkout', '-q', 'main']);
    writeShards(repo, checkpoint('day1'));
    repo.git(['commit', '-qam', 'day1']);

    const r = repo.git(['merge', '--no-edit', 'day5'], { allowFail: true, timeoutMs: 120_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`merge guard: model/${SHARDS[1]}: 1 protected probe\\(s\\) dropped`));
    expect(r.stderr).toContain(CONVEX);
    expect(status(repo)).toContain(`UU model/${SHARDS[1]}`);
    repo.git(['merge', '--abort']);
    expect(status(repo)).toBe('');

    const v = repo.gitTensor(['verify', 'day5'], { allowFail: true });
    expect(v.status).toBe(1);
    expect(v.stdout).toContain('model/model.safetensors.index.json');
    expect(v.stdout).toContain(CONVEX);
  });

  it('merges as before without protected probes, and says loudly when it cannot run them', () => {
    const plain = demoRepo({ probes: false });
    branch(plain, 'day5', 'main', checkpoint('day5'));
    onMain(plain, checkpoint('day1'), 'day1');
    const r = plain.git(['merge', '--no-edit', 'day5'], { timeoutMs: 120_000 });
    expect(r.stdout + r.stderr).not.toMatch(/guard|verify/);
    expect(plain.gitTensor(['verify']).stdout).toMatch(/no protected probes configured/);

    const odd = demoRepo({ config: (c) => { c.architectures = ['NoSuchModelForMaskedLM']; } });
    branch(odd, 'day5', 'main', checkpoint('day5'));
    onMain(odd, checkpoint('day1'), 'day1');
    const u = odd.git(['merge', '--no-edit', 'day5'], { timeoutMs: 120_000 });
    expect(u.stderr).toMatch(/merge guard: cannot run the protected probes on model\/model\.safetensors .*NOT guarded/);
  });
});
