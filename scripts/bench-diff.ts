// Benchmark of the model diff (issue: "`git diff` explains what changed in a model").
// Usage: npx tsx scripts/bench-diff.ts [--mib 1024] [--runs 3] [--keep]  (--keep leaves the repositories for profiling)
// Builds a repository with two commits of a generated checkpoint (3/4 of the bytes F32, 1/4 BF16,
// 4096 columns) and prints, for two kinds of change between them:
//   * the baseline: ObjectStore.readAsync of every tensor of both versions (what any comparison must read),
//     in a fresh node process,
//   * `git tensor diff HEAD~1 HEAD` (a separate process, as a user runs it),
//   * `git diff HEAD~1 HEAD`: time until its first line and in all (git smudges both versions to
//     temporary files before it runs the diff driver: measured alone as `git cat-file --filters`),
//   * `git diff` of a working-tree change: first line and total (git cleans the working-tree file to
//     compare it with the index, and smudges the index version, before the driver runs),
//   * `git show HEAD` in all (textconv: two smudges, then the table),
// medians of --runs runs, all in this run on this machine.

import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serializeHeader } from '../src/format/safetensors.js';
import type { DType } from '../src/format/dtype.js';
import { fromF32, kernelInfo } from '../src/kernels/index.js';
import { benchEnv, GiB, has, MiB, printTable, ROOT, sh, tempDir, numberOption } from './bench-lib.js';

const args = process.argv.slice(2);
const mib = numberOption('mib', 1024);
const runs = numberOption('runs', 3);
const COLS = 4096;

interface Spec { name: string; dtype: DType; rows: number; bytes: number }

function modelSpec(totalBytes: number): Spec[] {
  const specs: Spec[] = [];
  const f32Rows = Math.max(8, Math.round((totalBytes * 0.75) / 24 / (COLS * 4)));
  const bf16Rows = Math.max(8, Math.round((totalBytes * 0.25) / 8 / (COLS * 2)));
  for (let i = 0; i < 24; i++) specs.push({ name: `model.layers.${i}.mlp.up_proj.weight`, dtype: 'F32', rows: f32Rows, bytes: f32Rows * COLS * 4 });
  for (let i = 0; i < 8; i++) specs.push({ name: `model.layers.${i}.self_attn.q_proj.weight`, dtype: 'BF16', rows: bf16Rows, bytes: bf16Rows * COLS * 2 });
  return specs;
}

type Change = 'same' | 'lora' | 'dense' | 'sparse';

/** xorshift32 in [-0.5, 0.5): fast enough for a GiB, deterministic. */
function filler(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296 - 0.5;
  };
}

/** Values of tensor k of the base model, and of its changed version. */
function values(spec: Spec, k: number, change: Change): Float32Array {
  const next = filler(1000 + k);
  const w = new Float32Array(spec.rows * COLS);
  for (let i = 0; i < w.length; i++) w[i] = 0.05 * next();
  if (change === 'same') return w;
  const noise = filler(5000 + k);
  if (change === 'dense') for (let i = 0; i < w.length; i++) w[i]! += 1e-3 * noise();
  else if (change === 'sparse') for (let i = 0; i < w.length; i += 100) w[i]! += 1e-2 * noise();
  else {
    const r = 8;
    const b = Float32Array.from({ length: spec.rows * r }, () => noise());
    const a = Float32Array.from({ length: r * COLS }, () => noise());
    for (let i = 0; i < spec.rows; i++) {
      for (let q = 0; q < r; q++) {
        const bq = 1e-3 * b[i * r + q]!;
        for (let j = 0; j < COLS; j++) w[i * COLS + j]! += bq * a[q * COLS + j]!;
      }
    }
  }
  return w;
}

async function writeModel(path: string, specs: Spec[], changes: Change[]): Promise<void> {
  const { prefix, headerBytes, layout } = serializeHeader(specs.map((s) => ({ name: s.name, dtype: s.dtype, shape: [s.rows, COLS], byteLength: s.bytes })));
  const fd = openSync(path, 'w');
  writeSync(fd, prefix);
  writeSync(fd, headerBytes);
  for (const t of layout) {
    const k = specs.findIndex((s) => s.name === t.name);
    const spec = specs[k]!;
    const v = values(spec, k, changes[k]!);
    const bytes = spec.dtype === 'F32' ? new Uint8Array(v.buffer) : await fromF32(v, spec.dtype);
    writeSync(fd, bytes);
  }
  closeSync(fd);
}

/** Seconds until the first stdout byte and until exit. */
function firstOutput(cmd: string, a: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ first: number; total: number; head: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, a, { cwd, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let first = -1;
    let head = '';
    child.stdout.on('data', (d: Buffer) => {
      if (first < 0) first = Number(process.hrtime.bigint() - t0) / 1e9;
      if (head.length < 200) head += d.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${cmd} ${a.join(' ')} exited ${code}`));
      else resolve({ first, total: Number(process.hrtime.bigint() - t0) / 1e9, head });
    });
  });
}

async function median<T>(n: number, f: () => Promise<T>, key: (t: T) => number): Promise<T> {
  const all: T[] = [];
  for (let i = 0; i < n; i++) all.push(await f());
  all.sort((x, y) => key(x) - key(y));
  return all[Math.floor(n / 2)]!;
}

const work = tempDir('bench-diff');
const home = join(work, 'home');
mkdirSync(home);
writeFileSync(join(home, '.gitconfig'), '[init]\n\tdefaultBranch = main\n');
const env = benchEnv(home);
const specs = modelSpec(mib * MiB);
const fileBytes = specs.reduce((s, t) => s + t.bytes, 0);
const scenarios: [string, Change[]][] = [
  ['mixed: 8 rank-8, 8 dense, 4 sparse 1%, 12 same', specs.map((_, k) => (['lora', 'dense', 'lora', 'dense', 'sparse', 'same', 'same', 'same'] as Change[])[k % 8]!)],
  ['worst case: every tensor dense', specs.map(() => 'dense' as Change)],
];

const rows: (string | number)[][] = [];
for (const [label, changes] of scenarios) {
  const repo = join(work, `repo-${rows.length}`);
  mkdirSync(repo);
  const run = (a: string[]) => sh('git', a, { cwd: repo, env });
  process.stderr.write(`[${label}] generating two ${(fileBytes / GiB).toFixed(2)} GiB checkpoints in ${repo}...\n`);
  run(['init', '-q']);
  run(['tensor', 'install']);
  run(['tensor', 'track', '*.safetensors']);
  const model = join(repo, 'model.safetensors');
  const v1 = join(work, 'v1.safetensors'), v2 = join(work, 'v2.safetensors');
  await writeModel(v1, specs, specs.map(() => 'same'));
  await writeModel(v2, specs, changes);
  copyFileSync(v1, model);
  run(['add', '.']);
  run(['commit', '-q', '-m', 'base']);
  copyFileSync(v2, model);
  run(['add', '.']);
  run(['commit', '-q', '-m', 'fine-tune']);

  // Baseline: read every tensor of both versions from the store (hash-verified, ObjectStore.readAsync: the
  // fastest read there is, decoded in the addon), in a fresh process as `git tensor diff` runs in one:
  // process start-up is in both numbers.
  const reader = `
    import { readFileSync } from 'node:fs';
    import { ObjectStore } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/store/store.js')).href)};
    import { parsePointer } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/format/pointer.js')).href)};
    import { storeCodec } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/store/codec.js')).href)};
    const store = ObjectStore.open(process.argv[1], { codec: storeCodec() });
    for (const f of process.argv.slice(2)) for (const t of parsePointer(readFileSync(f, 'utf8')).tensors) await store.readAsync(t.id);`;
  const pointerFiles = ['HEAD~1', 'HEAD'].map((r, k) => {
    const f = join(work, `pointer-${k}.txt`);
    writeFileSync(f, run(['cat-file', 'blob', `${r}:model.safetensors`]));
    return f;
  });
  const readS = await median(runs, () => firstOutput('node', ['--input-type=module', '-e', reader, join(repo, '.git', 'tensor'), ...pointerFiles], repo, env), (r) => r.total);
  process.stderr.write(`[${label}] timing...\n`);
  const diffS = await median(runs, () => firstOutput('git', ['tensor', 'diff', 'HEAD~1', 'HEAD'], repo, env), (r) => r.total);
  const smudgeS = await median(runs, () => firstOutput('git', ['cat-file', '--filters', 'HEAD:model.safetensors'], repo, env), (r) => r.total);
  const gitDiff = await median(runs, () => firstOutput('git', ['diff', 'HEAD~1', 'HEAD'], repo, env), (r) => r.first);
  const gitShow = await median(runs, () => firstOutput('git', ['show', 'HEAD'], repo, env), (r) => r.total);
  // A working-tree change: the old version in the working tree, compared with HEAD's.
  copyFileSync(v1, model);
  const gitDiffWt = await median(runs, () => firstOutput('git', ['diff'], repo, env), (r) => r.first);
  run(['checkout', '--', 'model.safetensors']);
  // Peak memory of the diff process (GNU time), against the size of the largest tensor.
  let rss = 'n/a';
  if (has('/usr/bin/time')) {
    const r = spawnSync('/usr/bin/time', ['-f', '%M', 'git-tensor', 'diff', 'HEAD~1', 'HEAD'], { cwd: repo, env, stdio: ['ignore', 'ignore', 'pipe'] });
    const kib = Number(r.stderr.toString().trim().split('\n').pop());
    if (Number.isFinite(kib)) rss = `${(kib / 1024).toFixed(0)} MiB`;
  }
  rows.push([
    label, (fileBytes / GiB).toFixed(2), readS.total, diffS.total, (diffS.total / readS.total).toFixed(2) + 'x',
    smudgeS.total, gitDiff.first, gitDiff.total, gitDiffWt.first, gitDiffWt.total, gitShow.total, rss,
  ]);
  process.stderr.write(`[${label}] git diff began: ${gitDiff.head.split('\n')[0]}\n`);
  rmSync(v1, { force: true });
  rmSync(v2, { force: true });
  if (!args.includes('--keep')) rmSync(repo, { recursive: true, force: true });
}

printTable(`git tensor diff vs reading both versions (seconds, median of ${runs}; targets: diff <= 2x read, git diff first line < 3 s)`, [
  'change', 'GiB each', 'read both (store)', 'git tensor diff', 'diff/read', 'smudge 1 side (git cat-file --filters)',
  'git diff A B: first line', 'git diff A B: total', 'git diff (worktree): first line', 'git diff (worktree): total',
  'git show (textconv): total', 'diff peak RSS',
], rows);
const largest = Math.max(...specs.map((s) => s.bytes));
console.log(`\nlargest tensor: ${(largest / MiB).toFixed(0)} MiB; ${specs.length} tensors; ${runs} run(s) each; kernels: ${kernelInfo().active}`);
if (!args.includes('--keep')) rmSync(work, { recursive: true, force: true });
