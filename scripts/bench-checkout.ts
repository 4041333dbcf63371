// Benchmark of checkout of large checkpoints (issue #15, "Checkout that does not go through git's buffer").
// Usage: npx tsx scripts/bench-checkout.ts [--gib 1] [--runs 3]
// Prints one table: `git checkout` of a generated checkpoint (values shaped like trained weights) with
// git-tensor writing the file itself (the default above tensor.checkoutThreshold), the same checkout
// through git's smudge buffer (tensor.checkoutThreshold=-1), and `cp` of the same file in the same run;
// then `git status` after each checkout. Peak RSS is /usr/bin/time's for the git command (the largest of
// git and its children: git-tensor's filter, the index refresh). Medians of --runs; ratios against cp.

import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { serializeHeader } from '../src/format/safetensors.js';
import { benchEnv, GiB, has, MiB, printTable, sh, tempDir, numberOption } from './bench-lib.js';

const args = process.argv.slice(2);
const gib = numberOption('gib', 1);
const runs = numberOption('runs', 3);
const TIME = '/usr/bin/time';
if (!has(TIME)) throw new Error('needs GNU time at /usr/bin/time (apt-get install time)');

/** F32 matrices of 4096 columns, 64 MiB each, values like trained weights (sum of three uniforms). */
function writeModel(path: string, bytes: number): void {
  const cols = 4096;
  const rows = (64 * MiB) / (cols * 4);
  const count = Math.max(1, Math.round(bytes / (64 * MiB)));
  const { prefix, headerBytes } = serializeHeader(
    Array.from({ length: count }, (_, i) => ({ name: `layers.${i}.weight`, dtype: 'F32' as const, shape: [rows, cols], byteLength: rows * cols * 4 })));
  const fd = openSync(path, 'w');
  writeSync(fd, prefix);
  writeSync(fd, headerBytes);
  const buf = Buffer.allocUnsafe(64 * MiB);
  const w = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  let s = 1;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  for (let t = 0; t < count; t++) {
    for (let i = 0; i < w.length; i++) w[i] = (next() + next() + next() - 1.5) * 0.04;
    writeSync(fd, buf);
  }
  closeSync(fd);
}

interface Sample { seconds: number; rssMiB: number; cpu: number }

/** Runs `git args` under /usr/bin/time -v: wall seconds (ours) and peak RSS (time's, largest process). */
function timedGit(dir: string, env: NodeJS.ProcessEnv, gitArgs: string[]): Sample {
  const out = join(dir, '..', 'time.txt');
  const t = process.hrtime.bigint();
  const r = spawnSync(TIME, ['-v', '-o', out, 'git', ...gitArgs], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`git ${gitArgs.join(' ')} failed: ${r.stderr.toString()}`);
  const report = readFileSync(out, 'utf8');
  const field = (name: string) => Number(new RegExp(`${name}: ([\\d.]+)`).exec(report)![1]);
  return { seconds, rssMiB: field('Maximum resident set size \\(kbytes\\)') / 1024, cpu: field('User time \\(seconds\\)') + field('System time \\(seconds\\)') };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const root = tempDir('bench-checkout');
const home = join(root, 'home');
sh('mkdir', ['-p', home]);
const env = benchEnv(home);
const dir = join(root, 'repo');
const source = join(root, 'model.safetensors');
try {
  process.stderr.write(`writing a ${gib} GiB checkpoint...\n`);
  writeModel(source, gib * GiB);
  sh('git', ['init', '-q', '-b', 'main', dir], { env });
  const git = (a: string[]) => sh('git', a, { cwd: dir, env });
  git(['tensor', 'install']);
  git(['tensor', 'track', '*.safetensors']);
  git(['add', '.gitattributes']);
  git(['commit', '-qm', 'attributes']);
  git(['branch', 'empty']);
  sh('cp', [source, join(dir, 'model.safetensors')]);
  process.stderr.write('git add...\n');
  git(['add', 'model.safetensors']);
  git(['commit', '-qm', 'model']);

  const rows: (string | number)[][] = [];
  const cp: number[] = [];
  for (let i = 0; i < runs; i++) {
    rmSync(join(dir, 'copy.bin'), { force: true });
    sh('sync', []);
    const t = process.hrtime.bigint();
    sh('cp', [source, join(dir, 'copy.bin')]);
    cp.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  rmSync(join(dir, 'copy.bin'), { force: true });
  const cpSeconds = median(cp);
  rows.push([`cp of the same file (${gib} GiB)`, cpSeconds, 1, '-', '-', '-', '-']);

  const modes: [string, string[]][] = [
    ['git checkout, git-tensor writes the file (default)', []],
    ['git checkout through git\'s smudge buffer (threshold -1)', ['-c', 'tensor.checkoutThreshold=-1']],
  ];
  for (const [label, config] of modes) {
    const co: Sample[] = [];
    const st: Sample[] = [];
    for (let i = 0; i < runs; i++) {
      git(['checkout', '-q', 'empty']);
      sh('sync', []);
      co.push(timedGit(dir, env, [...config, 'checkout', '-q', 'main']));
      st.push(timedGit(dir, env, ['status', '--porcelain']));
      const dirty = git(['status', '--porcelain']);
      if (dirty) throw new Error(`status not clean after ${label}: ${dirty}`);
    }
    const s = median(co.map((x) => x.seconds));
    rows.push([label, s, s / cpSeconds, median(co.map((x) => x.cpu)), median(co.map((x) => x.rssMiB)), median(st.map((x) => x.seconds)), median(st.map((x) => x.rssMiB))]);
  }
  const same = spawnSync('cmp', [source, join(dir, 'model.safetensors')]).status === 0;
  if (!same) throw new Error('checked-out file differs from the source');
  printTable(`Checkout of a ${gib} GiB checkpoint (${Math.round(gib * 16)} F32 tensors of 64 MiB), medians of ${runs}`,
    ['what', 'seconds', 'x cp', 'CPU s (user+sys)', 'peak RSS MiB', 'then git status s', 'status peak RSS MiB'], rows);
  console.log(`\nload average during the run: ${sh('cat', ['/proc/loadavg']).split(' ').slice(0, 3).join(' ')} on ${sh('nproc', []).trim()} cores`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
