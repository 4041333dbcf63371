// Benchmark of `git add` (issue #15, item 4: "A faster git add").
// Usage: npx tsx scripts/bench-add.ts [--gib 1] [--shards 1] [--runs 3] [--no-lfs] [--keep] [--bin DIR] [--before DIR]
// (--bin: the bin/ of another checkout to time instead of this one; --before: the bin/ of another build,
// e.g. the previous version, whose `git add` is timed in the same rounds as this one's)
// A Llama-2-7B-shaped BF16 checkpoint (embedding 32000x4096, then layers of 4x 4096x4096 attention and
// 3x 11008x4096 MLP matrices, values shaped like trained weights) cut to about --gib GiB, in --shards
// files. --runs rounds, each timing back to back: `openssl dgst -sha256` and `cp` of the files
// (baselines), `git add` with git-tensor in a fresh repository, `git add` with git-lfs, and git-tensor's
// `git status` after a touch; medians of the times and of the per-round ratios (the machine may be
// shared: a ratio then compares runs made under the same load); the filter's peak RSS (GNU time). Then `git tensor gc` of the add (the
// heavy encoding, see docs/store.md) and a sparse fine-tune: 0.1% of the elements of 4 tensors changed,
// store growth against the bytes of the chunks that changed.

import { closeSync, mkdirSync, openSync, readFileSync, readSync, rmSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { serializeHeader } from '../src/format/safetensors.js';
import { tensorChunkBytes } from '../src/store/chunking.js';
import { benchEnv, dirBytes, ensureDebian, GiB, MiB, printTable, sh, tempDir, numberOption } from './bench-lib.js';

const args = process.argv.slice(2);
const gib = numberOption('gib', 1);
const shards = Math.max(1, numberOption('shards', 1));
const runs = numberOption('runs', 3);
const withLfs = !args.includes('--no-lfs');

interface Spec { name: string; shape: [number, number]; bytes: number }

/** Llama-2-7B's tensors in file order, BF16, up to about `totalBytes` (at least one). */
function llamaSpec(totalBytes: number): Spec[] {
  const all: Spec[] = [];
  const add = (name: string, rows: number, cols: number) => all.push({ name, shape: [rows, cols], bytes: rows * cols * 2 });
  add('model.embed_tokens.weight', 32000, 4096);
  for (let l = 0; l < 32; l++) {
    for (const p of ['q', 'k', 'v', 'o']) add(`model.layers.${l}.self_attn.${p}_proj.weight`, 4096, 4096);
    add(`model.layers.${l}.mlp.gate_proj.weight`, 11008, 4096);
    add(`model.layers.${l}.mlp.up_proj.weight`, 11008, 4096);
    add(`model.layers.${l}.mlp.down_proj.weight`, 4096, 11008);
  }
  const out: Spec[] = [];
  let total = 0;
  for (const s of all) {
    if (out.length && total + s.bytes > totalBytes * 1.02) break;
    out.push(s);
    total += s.bytes;
  }
  return out;
}

/**
 * BF16 values shaped like trained weights (a sum of three uniforms, scale 0.02), rounded to nearest even:
 * random bytes would be NaNs and huge exponents no weight file holds.
 */
let seed = 1;
function fillBf16(out: Buffer, n: number): void {
  let s = seed;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const w = new Uint16Array(out.buffer, out.byteOffset, n / 2);
  for (let i = 0; i < w.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const a = s;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const b = s;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f[0] = ((a + b + s) / 2 ** 32 - 1.5) * 0.04;
    const x = u[0]!;
    w[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  seed = s;
}

interface Placed { file: string; start: number; spec: Spec }

/** Writes the shards without holding them in memory; returns where each tensor's data starts. */
function writeModel(dir: string, specs: Spec[]): { files: string[]; placed: Placed[] } {
  const per = Math.ceil(specs.length / shards);
  const files: string[] = [];
  const placed: Placed[] = [];
  const buf = Buffer.allocUnsafe(64 * MiB);
  for (let k = 0; k * per < specs.length; k++) {
    const part = specs.slice(k * per, (k + 1) * per);
    const file = `model-${String(k + 1).padStart(5, '0')}-of-${String(Math.ceil(specs.length / per)).padStart(5, '0')}.safetensors`;
    files.push(file);
    const { prefix, headerBytes, layout } = serializeHeader(part.map((s) => ({ name: s.name, dtype: 'BF16' as const, shape: s.shape, byteLength: s.bytes })));
    const fd = openSync(join(dir, file), 'w');
    writeSync(fd, prefix);
    writeSync(fd, headerBytes);
    for (const t of layout) {
      const spec = part.find((s) => s.name === t.name)!;
      placed.push({ file, start: 8 + headerBytes.length + t.begin, spec });
      for (let left = t.end - t.begin; left > 0;) {
        const n = Math.min(left, buf.length);
        fillBf16(buf, n);
        writeSync(fd, buf, 0, n);
        left -= n;
      }
    }
    closeSync(fd);
  }
  return { files, placed };
}

/**
 * A sparse fine-tune: 0.1% of the elements of each tensor in `targets`, picked at random, nudged by about
 * 1% of their value (at least one BF16 step). Returns the bytes of the chunks git-tensor cuts that now
 * differ (chunking.ts: whole rows up to 64 KiB).
 */
function sparseFineTune(dir: string, targets: Placed[]): number {
  let s = 987654321;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let changedChunkBytes = 0;
  for (const t of targets) {
    const fd = openSync(join(dir, t.file), 'r+');
    const data = Buffer.allocUnsafe(t.spec.bytes);
    readSync(fd, data, 0, data.length, t.start);
    const w = new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
    const chunk = tensorChunkBytes(16, t.spec.shape);
    const touched = new Set<number>();
    const n = Math.max(1, Math.round(w.length * 0.001));
    for (let k = 0; k < n; k++) {
      const i = Math.floor(rand() * w.length);
      w[i] = (w[i]! + (rand() < 0.5 ? 1 : 2)) & 0xffff;
      touched.add(Math.floor((2 * i) / chunk));
    }
    for (const c of touched) changedChunkBytes += Math.min(chunk, t.spec.bytes - c * chunk);
    writeSync(fd, data, 0, data.length, t.start);
    closeSync(fd);
  }
  return changedChunkBytes;
}

const work = tempDir('bench-add');
const env = benchEnv(join(work, 'home'));
const binAt = args.indexOf('--bin');
if (binAt >= 0) env.PATH = `${args[binAt + 1]}:${env.PATH}`;
const beforeAt = args.indexOf('--before');
const beforeEnv = beforeAt >= 0 ? { ...env, PATH: `${args[beforeAt + 1]}:${env.PATH}` } : null;
mkdirSync(join(work, 'home'));
writeFileSync(join(work, 'home', '.gitconfig'), '[init]\n\tdefaultBranch = main\n');
const src = join(work, 'src');
mkdirSync(src);
const specs = llamaSpec(gib * GiB);
process.stderr.write(`generating ${gib} GiB BF16 checkpoint (${specs.length} tensors, ${shards} shard(s)) in ${work}...\n`);
const { files, placed } = writeModel(src, specs);
const fileBytes = specs.reduce((n, s) => n + s.bytes, 0);
const fileGiB = fileBytes / GiB;
const run = (cmd: string, a: string[], cwd = work, extraEnv: NodeJS.ProcessEnv = {}) => sh(cmd, a, { cwd, env: { ...env, ...extraEnv } });
const srcFiles = files.map((f) => join(src, f));

const rssFile = join(work, 'rss.txt');
const lastRssMiB = () => Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()) / 1024;

/** A fresh repository with the checkpoint copied in (untimed), the filter wrapped in GNU time. */
function tensorRepo(name: string, withEnv: NodeJS.ProcessEnv = env): string {
  const repo = join(work, name);
  rmSync(repo, { recursive: true, force: true });
  mkdirSync(repo);
  run('git', ['init', '-q'], repo);
  sh('git-tensor', ['install'], { cwd: repo, env: withEnv });
  sh('git-tensor', ['track', '*.safetensors'], { cwd: repo, env: withEnv });
  run('git', ['config', 'filter.tensor.process', `/usr/bin/time -f %M -o ${rssFile} git-tensor filter-process`], repo);
  for (const f of files) run('cp', [join(src, f), join(repo, f)]);
  return repo;
}

function lfsRepo(name: string): string {
  const repo = join(work, name);
  rmSync(repo, { recursive: true, force: true });
  mkdirSync(repo);
  run('git', ['init', '-q'], repo);
  run('git', ['lfs', 'install', '--local'], repo);
  run('git', ['lfs', 'track', '*.safetensors'], repo);
  for (const f of files) run('cp', [join(src, f), join(repo, f)]);
  return repo;
}

const timed = (fn: () => void): number => {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Rounds: each times every operation once, back to back, so that a ratio compares runs made under the
// same load (the machine is shared); the table gives medians of the times and of the per-round ratios.
const lfs = withLfs && ensureDebian('git-lfs', 'git-lfs');
const t = { openssl: [] as number[], cp: [] as number[], add: [] as number[], status: [] as number[], lfs: [] as number[], before: [] as number[] };
const r = { add: [] as number[], status: [] as number[], lfs: [] as number[], before: [] as number[] };
let repo = '';
let addRss = 0;
let statusRss = 0;
for (let round = 0; round < runs; round++) {
  rmSync(join(work, 'copy'), { recursive: true, force: true });
  mkdirSync(join(work, 'copy'));
  repo = tensorRepo(`repo-${round}`);
  const lrepo = lfs ? lfsRepo(`lfs-${round}`) : '';
  const openssl = timed(() => run('openssl', ['dgst', '-sha256', ...srcFiles]));
  t.openssl.push(openssl);
  t.cp.push(timed(() => run('cp', [...srcFiles, join(work, 'copy')])));
  const add = timed(() => run('git', ['add', ...files], repo));
  addRss = Math.max(addRss, lastRssMiB());
  t.add.push(add);
  r.add.push(add / openssl);
  if (lfs) {
    const l = timed(() => run('git', ['add', ...files], lrepo));
    t.lfs.push(l);
    r.lfs.push(l / add);
    rmSync(lrepo, { recursive: true, force: true });
  }
  if (beforeEnv) {
    const brepo = tensorRepo(`before-${round}`, beforeEnv);
    const b = timed(() => sh('git', ['add', ...files], { cwd: brepo, env: beforeEnv }));
    t.before.push(b);
    r.before.push(b / openssl);
    rmSync(brepo, { recursive: true, force: true });
  }
  run('git', ['commit', '-qm', 'base'], repo);
  const now = new Date(Date.now() + 1000 * (round + 1));
  for (const f of files) utimesSync(join(repo, f), now, now);
  const status = timed(() => run('git', ['status', '--porcelain'], repo));
  statusRss = Math.max(statusRss, lastRssMiB());
  t.status.push(status);
  r.status.push(status / openssl);
  if (round < runs - 1) rmSync(repo, { recursive: true, force: true });
}
rmSync(join(work, 'copy'), { recursive: true, force: true });
const storeAfterAdd = dirBytes(join(repo, '.git', 'tensor'));

const gcT = process.hrtime.bigint();
run('git-tensor', ['gc'], repo);
const gcS = Number(process.hrtime.bigint() - gcT) / 1e9;
const storeAfterGc = dirBytes(join(repo, '.git', 'tensor'));

// The sparse fine-tune.
const targets = placed.filter((p) => /self_attn\.[qv]_proj|mlp\.(up|down)_proj/.test(p.spec.name)).slice(0, 4);
const beforeFt = dirBytes(join(repo, '.git', 'tensor'));
const changedChunkBytes = sparseFineTune(repo, targets);
const ftT = process.hrtime.bigint();
run('git', ['add', ...files], repo);
const ftS = Number(process.hrtime.bigint() - ftT) / 1e9;
const growth = dirBytes(join(repo, '.git', 'tensor')) - beforeFt;
run('git', ['commit', '-qm', 'fine-tune'], repo);
run('git-tensor', ['gc'], repo);
const afterFtGc = dirBytes(join(repo, '.git', 'tensor'));
run('git-tensor', ['fsck'], repo);
rmSync(join(repo, files[0]!));
run('git', ['checkout', '--', files[0]!], repo);
// The checkout must give back the fine-tuned bytes.
run('git', ['diff', '--quiet'], repo);

const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
const x = (v: number) => `${v.toFixed(2)}x`;
const rows: (string | number)[][] = [
  ['openssl dgst -sha256 (baseline)', median(t.openssl), fileGiB / median(t.openssl), '', ''],
  ['cp (baseline)', median(t.cp), fileGiB / median(t.cp), '', ''],
  ['git-tensor: git add', median(t.add), fileGiB / median(t.add), `${x(median(r.add))} openssl (target <= 3x)`, `${addRss.toFixed(0)} MiB`],
  ['git-tensor: git status after touch', median(t.status), fileGiB / median(t.status), `${x(median(r.status))} openssl`, `${statusRss.toFixed(0)} MiB`],
];
if (beforeEnv) rows.push([`git add with ${args[beforeAt + 1]}`, median(t.before), fileGiB / median(t.before), `${x(median(r.before))} openssl`, '']);
if (lfs) rows.push(['git-lfs: git add (peer)', median(t.lfs), fileGiB / median(t.lfs), `${x(median(r.lfs))} git-tensor's time (target >= 2x)`, '']);
else if (withLfs) rows.push(['git-lfs', 'not installed', '', '', '']);
process.stderr.write(`per round: git add / openssl ${r.add.map(x).join(' ')}; git-lfs / git add ${r.lfs.map(x).join(' ')}\n`);

printTable(`bench-add: ${fileGiB.toFixed(2)} GiB BF16 checkpoint, ${specs.length} Llama-shaped tensors in ${files.length} file(s), median of ${runs} rounds (ratios: medians of per-round ratios)`,
  ['operation', 'seconds', 'GiB/s', 'vs baseline', 'filter peak RSS'], rows);
printTable('store size', ['when', 'bytes', 'of the checkpoint', 'note'], [
  ['after git add', `${(storeAfterAdd / MiB).toFixed(1)} MiB`, `${(100 * storeAfterAdd / fileBytes).toFixed(1)}%`, ''],
  ['after git tensor gc', `${(storeAfterGc / MiB).toFixed(1)} MiB`, `${(100 * storeAfterGc / fileBytes).toFixed(1)}%`, `gc took ${gcS.toFixed(2)} s`],
]);
printTable('sparse fine-tune: 0.1% of the elements of 4 tensors changed', ['what', 'bytes', 'vs changed chunks', 'target'], [
  ['chunks that changed', `${(changedChunkBytes / MiB).toFixed(1)} MiB`, '1.00x', ''],
  [`store growth at git add (${ftS.toFixed(2)} s)`, `${(growth / MiB).toFixed(2)} MiB`, ratio(growth, changedChunkBytes), '<= 1.1x'],
  ['store after commit + gc, minus before', `${((afterFtGc - storeAfterGc) / MiB).toFixed(2)} MiB`, ratio(afterFtGc - storeAfterGc, changedChunkBytes), ''],
]);
if (!args.includes('--keep')) rmSync(work, { recursive: true, force: true });
