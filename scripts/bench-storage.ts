// Benchmark of how much a model history costs to store (issue: "Store a model history at a fraction of
// its size"). Usage: npx tsx scripts/bench-storage.ts [--mib 64] [--no-lfs]
// Four generated histories, each committed version by version with plain git:
//   (a) 10 epochs of a dense F32 training run, relative updates from 1% down to 0.1%
//   (b) a base and 5 diff-pruned fine-tunes (0.5% of elements changed each)
//   (c) a base and 3 frozen-backbone fine-tunes (the head and the last block change)
//   (d) a BF16 base alone
// For each: logical bytes, git-tensor's store after `git tensor gc`, git-lfs's object store, and per-file
// `zstd -3`, all on the same files in the same run; then add and checkout throughput.

import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serializeSafetensors } from '../src/format/safetensors.js';
import { benchEnv, dirBytes, ensureDebian, MiB, printTable, sh, tempDir } from './bench-lib.js';

const args = process.argv.slice(2);
const mib = Number(args[args.indexOf('--mib') + 1] ?? 64) || 64;
const withLfs = !args.includes('--no-lfs');

/** Deterministic normal-ish weights (xorshift + Box-Muller), scale 0.02 as in transformer inits. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  const u = () => ((s ^= s << 13), (s ^= s >>> 17), (s ^= s << 5), ((s >>> 0) + 0.5) / 2 ** 32);
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

interface Model { names: string[]; shapes: number[][]; data: Float32Array[] }

function baseModel(totalBytes: number, seed: number): Model {
  const cols = 1024;
  const layers = 8;
  const rows = Math.max(1, Math.floor(totalBytes / 4 / cols / (layers * 2 + 2)));
  const names: string[] = ['embed.weight'];
  for (let l = 0; l < layers; l++) names.push(`layers.${l}.attn.weight`, `layers.${l}.mlp.weight`);
  names.push('head.weight');
  const g = rng(seed);
  const data = names.map(() => Float32Array.from({ length: rows * cols }, () => g() * 0.02));
  return { names, shapes: names.map(() => [rows, cols]), data };
}

function clone(m: Model): Model {
  return { names: m.names, shapes: m.shapes, data: m.data.map((d) => d.slice()) };
}

function f32File(m: Model): Buffer {
  return serializeSafetensors(m.names.map((name, k) => ({ name, dtype: 'F32' as const, shape: m.shapes[k]!, data: new Uint8Array(m.data[k]!.buffer) })), { format: 'pt' });
}

/** BF16 by truncation after rounding to nearest even. */
function bf16File(m: Model): Buffer {
  return serializeSafetensors(m.names.map((name, k) => {
    const f = m.data[k]!;
    const u = new Uint32Array(f.buffer);
    const out = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) out[i] = (u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) >>> 16;
    return { name, dtype: 'BF16' as const, shape: m.shapes[k]!, data: new Uint8Array(out.buffer) };
  }), { format: 'pt' });
}

function histories(bytes: number): Record<string, Buffer[]> {
  const base = baseModel(bytes, 7);
  const a: Buffer[] = [f32File(base)];
  let cur = base;
  const g = rng(11);
  for (let e = 1; e < 10; e++) {
    cur = clone(cur);
    const rel = 0.01 * Math.pow(0.1, (e - 1) / 8); // 1% down to 0.1%
    for (const d of cur.data) for (let i = 0; i < d.length; i++) d[i]! *= 1 + rel * g();
    a.push(f32File(cur));
  }
  const b: Buffer[] = [f32File(base)];
  for (let f = 0; f < 5; f++) {
    const ft = clone(base);
    const h = rng(100 + f);
    for (const d of ft.data) for (let i = 0; i < d.length; i++) if ((h() + 5) % 1 < 0.005) d[i]! += 0.01 * h();
    b.push(f32File(ft));
  }
  const c: Buffer[] = [f32File(base)];
  for (let f = 0; f < 3; f++) {
    const ft = clone(base);
    const h = rng(200 + f);
    for (const k of [ft.names.length - 1, ft.names.length - 2, ft.names.length - 3]) for (let i = 0; i < ft.data[k]!.length; i++) ft.data[k]![i]! += 0.001 * h();
    c.push(f32File(ft));
  }
  return { '(a) 10 epochs, dense F32': a, '(b) base + 5 diff-pruned (0.5%)': b, '(c) base + 3 frozen-backbone': c, '(d) BF16 base alone': [bf16File(base)] };
}

const work = tempDir('bench-storage');
const home = join(work, 'home');
mkdirSync(home);
writeFileSync(join(home, '.gitconfig'), '[init]\n\tdefaultBranch = main\n');
const env = benchEnv(home);
const lfs = withLfs && ensureDebian('git-lfs', 'git-lfs');
const zstd = ensureDebian('zstd', 'zstd');

function commitAll(dir: string, versions: Buffer[], setup: string[][]): { addSeconds: number } {
  mkdirSync(dir);
  sh('git', ['init', '-q'], { cwd: dir, env });
  for (const cmd of setup) sh(cmd[0]!, cmd.slice(1), { cwd: dir, env });
  let addSeconds = 0;
  versions.forEach((v, k) => {
    writeFileSync(join(dir, 'model.safetensors'), v);
    const t = process.hrtime.bigint();
    sh('git', ['add', 'model.safetensors'], { cwd: dir, env });
    addSeconds += Number(process.hrtime.bigint() - t) / 1e9;
    sh('git', ['commit', '-qm', `v${k}`], { cwd: dir, env });
  });
  return { addSeconds };
}

const sizeRows: (string | number)[][] = [];
const speedRows: (string | number)[][] = [];
for (const [name, versions] of Object.entries(histories(mib * MiB))) {
  const logical = versions.reduce((s, v) => s + v.length, 0);
  const dir = join(work, name.slice(1, 2));
  const { addSeconds } = commitAll(dir, versions, [['git-tensor', 'install'], ['git-tensor', 'track', '*.safetensors']]);
  sh('git-tensor', ['gc'], { cwd: dir, env });
  const stored = dirBytes(join(dir, '.git', 'tensor', 'packs'));
  rmSync(join(dir, 'model.safetensors'));
  const t = process.hrtime.bigint();
  sh('git', ['checkout', '--', 'model.safetensors'], { cwd: dir, env });
  const checkoutSeconds = Number(process.hrtime.bigint() - t) / 1e9;
  const last = versions.at(-1)!.length;
  speedRows.push([name, ((logical / MiB) / addSeconds).toFixed(0), ((last / MiB) / checkoutSeconds).toFixed(0)]);

  let zstdBytes = NaN;
  if (zstd) {
    zstdBytes = 0;
    versions.forEach((v, k) => {
      const f = join(work, `v${k}.safetensors`);
      writeFileSync(f, v);
      sh('zstd', ['-3', '-q', '-f', f, '-o', `${f}.zst`]);
      zstdBytes += statSync(`${f}.zst`).size;
      rmSync(f);
      rmSync(`${f}.zst`);
    });
  }
  let lfsBytes = NaN;
  if (lfs) {
    const ldir = join(work, `lfs-${name.slice(1, 2)}`);
    commitAll(ldir, versions, [['git', 'lfs', 'install', '--local'], ['git', 'lfs', 'track', '*.safetensors']]);
    lfsBytes = dirBytes(join(ldir, '.git', 'lfs', 'objects'));
    rmSync(ldir, { recursive: true, force: true });
  }
  const pct = (x: number) => (Number.isFinite(x) ? `${((100 * x) / logical).toFixed(1)}%` : 'n/a');
  sizeRows.push([name, `${(logical / MiB).toFixed(0)} MiB`, pct(stored), pct(zstdBytes), pct(lfsBytes),
    Number.isFinite(zstdBytes) ? `${(stored / zstdBytes).toFixed(2)}x` : 'n/a']);
  rmSync(dir, { recursive: true, force: true });
}

printTable(`bench-storage: stored / logical, ${mib} MiB per version (after git tensor gc)`,
  ['history', 'logical', 'git-tensor', 'zstd -3 per file', 'git-lfs', 'git-tensor / zstd'], sizeRows);
printTable('throughput (MiB/s of checkpoint)', ['history', 'git add', 'git checkout (last version)'], speedRows);
rmSync(work, { recursive: true, force: true });
