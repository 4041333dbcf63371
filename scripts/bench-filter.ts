// Benchmark of the clean/smudge filter (issue: "Commit model checkpoints with ordinary git").
// Usage: npx tsx scripts/bench-filter.ts [--gib 2] [--runs 3] [--no-lfs]
// Prints one table: git add / git checkout of a generated checkpoint (values shaped like trained
// weights) next to openssl sha256, cp, git with a pass-through filter (the floor any filter pays) and
// git-lfs on the same file in the same run, the filter process's peak RSS, and store growth for
// (a) 2 of 32 tensors changed and (b) 1% of the rows of every matrix changed.

import { closeSync, openSync, readFileSync, rmSync, writeSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serializeHeader } from '../src/format/safetensors.js';
import type { DType } from '../src/format/dtype.js';
import { benchEnv, dirBytes, ensureDebian, GiB, medianSeconds, MiB, printTable, sh, tempDir, numberOption } from './bench-lib.js';

const args = process.argv.slice(2);
const gib = numberOption('gib', 2);
const runs = numberOption('runs', 3);
const withLfs = !args.includes('--no-lfs');

interface Spec { name: string; dtype: DType; shape: [number, number]; bytes: number }

/** ~32 matrices, 3/4 of the bytes F32 and 1/4 BF16, 4096 columns so a row is 16 KiB (F32) or 8 KiB. */
function modelSpec(totalBytes: number): Spec[] {
  const specs: Spec[] = [];
  const f32Rows = Math.max(1, Math.round((totalBytes * 0.75) / 24 / (4096 * 4)));
  const bf16Rows = Math.max(1, Math.round((totalBytes * 0.25) / 8 / (4096 * 2)));
  for (let i = 0; i < 24; i++) specs.push({ name: `layers.${i}.mlp.weight`, dtype: 'F32', shape: [f32Rows, 4096], bytes: f32Rows * 4096 * 4 });
  for (let i = 0; i < 8; i++) specs.push({ name: `layers.${i}.attn.weight`, dtype: 'BF16', shape: [bf16Rows, 4096], bytes: bf16Rows * 4096 * 2 });
  return specs;
}

/**
 * Fills `out` with values shaped like trained weights (a sum of three uniforms, scale 0.02) as F32 or
 * BF16 bytes: random bytes would be NaNs and huge exponents that no weight file holds, and would make
 * compression look useless.
 */
let weightSeed = 1;
function fillWeights(out: Buffer, n: number, dtype: DType): void {
  let s = weightSeed;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  if (dtype === 'F32') {
    const w = new Float32Array(out.buffer, out.byteOffset, n / 4);
    for (let i = 0; i < w.length; i++) w[i] = (next() + next() + next() - 1.5) * 0.04;
  } else {
    const w = new Uint16Array(out.buffer, out.byteOffset, n / 2);
    for (let i = 0; i < w.length; i++) {
      f[0] = (next() + next() + next() - 1.5) * 0.04;
      w[i] = u[0]! >>> 16;
    }
  }
  weightSeed = s;
}

/** Writes the checkpoint without holding it in memory; returns where each tensor's data starts. */
function writeModel(path: string, specs: Spec[]): Map<string, { start: number; spec: Spec }> {
  const { prefix, headerBytes, layout } = serializeHeader(specs.map((s) => ({ name: s.name, dtype: s.dtype, shape: s.shape, byteLength: s.bytes })));
  const fd = openSync(path, 'w');
  writeSync(fd, prefix);
  writeSync(fd, headerBytes);
  const buf = Buffer.allocUnsafe(64 * MiB);
  const where = new Map<string, { start: number; spec: Spec }>();
  const base = 8 + headerBytes.length;
  for (const t of layout) {
    const spec = specs.find((s) => s.name === t.name)!;
    where.set(t.name, { start: base + t.begin, spec });
    for (let left = t.end - t.begin; left > 0;) {
      const n = Math.min(left, buf.length);
      fillWeights(buf, n, spec.dtype);
      writeSync(fd, buf, 0, n);
      left -= n;
    }
  }
  closeSync(fd);
  return where;
}

/** Rewrites `length` bytes at `offset` with new weights of `dtype` (a changed row or tensor). */
function overwrite(path: string, offset: number, length: number, dtype: DType): void {
  const fd = openSync(path, 'r+');
  const buf = Buffer.allocUnsafe(length);
  fillWeights(buf, length, dtype);
  writeSync(fd, buf, 0, length, offset);
  closeSync(fd);
}

/**
 * git's own cost of moving the file through a long-running filter: a filter that does no work (clean
 * answers a one-line pointer, smudge sends the file back from disk) over the same 1 MiB pipes git-tensor
 * asks for. No filter can beat this row; checkout through any filter costs at least this much.
 */
const PASS_THROUGH_FILTER = String.raw`
import sys, os, fcntl
for fd in (0, 1):
    try: fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ
    except OSError: pass
inp, out = sys.stdin.buffer, sys.stdout.buffer
def packet():
    head = inp.read(4)
    if not head: return None
    n = int(head, 16)
    return b'' if n == 0 else inp.read(n - 4)
def send(b): out.write(b'%04x' % (len(b) + 4)); out.write(b)
def lines():
    got = []
    while True:
        p = packet()
        if p is None: return None
        if p == b'': return got
        got.append(p)
lines(); send(b'git-filter-server\n'); send(b'version=2\n'); out.write(b'0000'); out.flush()
lines(); send(b'capability=clean\n'); send(b'capability=smudge\n'); out.write(b'0000'); out.flush()
while True:
    req = lines()
    if req is None: break
    while packet() != b'': pass
    send(b'status=success\n'); out.write(b'0000')
    if b'command=smudge\n' in req:
        with open(sys.argv[1], 'rb') as f:
            while True:
                b = f.read(65516)
                if not b: break
                send(b)
    else:
        send(b'pass-through\n')
    out.write(b'00000000'); out.flush()
`;

const work = tempDir('bench-filter');
const env = benchEnv(join(work, 'home'));
mkdirSync(join(work, 'home'));
writeFileSync(join(work, 'home', '.gitconfig'), '[init]\n\tdefaultBranch = main\n');
const model = join(work, 'model.safetensors');
const specs = modelSpec(gib * GiB);
process.stderr.write(`generating ${gib} GiB checkpoint (${specs.length} tensors) in ${work}...\n`);
const layout = writeModel(model, specs);
const fileBytes = specs.reduce((s, t) => s + t.bytes, 0);
const fileGiB = fileBytes / GiB;
const run = (cmd: string, a: string[], cwd = work) => sh(cmd, a, { cwd, env });

const opensslS = medianSeconds(runs, () => run('openssl', ['dgst', '-sha256', model]));
const cpS = medianSeconds(runs, () => run('cp', [model, join(work, 'copy.bin')]), () => rmSync(join(work, 'copy.bin'), { force: true }));
rmSync(join(work, 'copy.bin'), { force: true });

/** A fresh repo each run so every `git add` stores the whole file. */
function tensorRepo(i: number): string {
  const repo = join(work, `repo-${i}`);
  rmSync(repo, { recursive: true, force: true });
  mkdirSync(repo);
  run('git', ['init', '-q'], repo);
  run('git-tensor', ['install'], repo);
  run('git-tensor', ['track', '*.safetensors'], repo);
  // Wrap the filter in GNU time to read its peak RSS.
  run('git', ['config', 'filter.tensor.process', `/usr/bin/time -f %M -o ${join(work, 'rss.txt')} git-tensor filter-process`], repo);
  run('cp', [model, join(repo, 'model.safetensors')]);
  return repo;
}

let repo = '';
let k = 0;
// Without compression first (chunks stored raw): what hashing, chunking and writing the pack cost alone.
const rawAddS = medianSeconds(runs, () => run('git', ['add', 'model.safetensors'], repo), () => {
  repo = tensorRepo(k++);
  run('git', ['config', 'tensor.compression', 'false'], repo);
});
const addS = medianSeconds(runs, () => run('git', ['add', 'model.safetensors'], repo), () => (repo = tensorRepo(k++)));
const addRssKiB = Number(readFileSync(join(work, 'rss.txt'), 'utf8').trim().split('\n').pop());
run('git', ['commit', '-qm', 'base'], repo);
const checkoutS = medianSeconds(runs, () => run('git', ['checkout', '--', 'model.safetensors'], repo), () => rmSync(join(repo, 'model.safetensors')));
const checkoutRssKiB = Number(readFileSync(join(work, 'rss.txt'), 'utf8').trim().split('\n').pop());
run('cmp', [model, join(repo, 'model.safetensors')]);

// (a) two whole tensors changed
const packs = join(repo, '.git', 'tensor');
const beforeA = dirBytes(packs);
const changedA = specs.slice(0, 2);
for (const s of changedA) overwrite(join(repo, 'model.safetensors'), layout.get(s.name)!.start, s.bytes, s.dtype);
run('git', ['commit', '-qam', 'two tensors'], repo);
const growthA = dirBytes(packs) - beforeA;
const changedABytes = changedA.reduce((s, t) => s + t.bytes, 0);

// (b) 1% of the rows of every matrix changed (random rows)
const beforeB = dirBytes(packs);
let seed = 12345;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
for (const s of specs) {
  const rowBytes = s.bytes / s.shape[0];
  const rows = Math.max(1, Math.round(s.shape[0] * 0.01));
  for (let r = 0; r < rows; r++) overwrite(join(repo, 'model.safetensors'), layout.get(s.name)!.start + Math.floor(rand() * s.shape[0]) * rowBytes, rowBytes, s.dtype);
}
run('git', ['commit', '-qam', '1% rows'], repo);
const growthB = dirBytes(packs) - beforeB;
run('git-tensor', ['fsck'], repo);

// The floor: git with a filter that does nothing.
const floorRepo = join(work, 'floor');
mkdirSync(floorRepo);
writeFileSync(join(work, 'pass-through.py'), PASS_THROUGH_FILTER);
run('git', ['init', '-q'], floorRepo);
writeFileSync(join(floorRepo, '.gitattributes'), '*.safetensors filter=pass\n');
run('git', ['config', 'filter.pass.process', `python3 ${join(work, 'pass-through.py')} ${model}`], floorRepo);
run('git', ['config', 'filter.pass.required', 'true'], floorRepo);
run('cp', [model, join(floorRepo, 'model.safetensors')]);
const floorAddS = medianSeconds(runs, () => run('git', ['add', 'model.safetensors'], floorRepo), () => run('git', ['rm', '-q', '--cached', '--ignore-unmatch', 'model.safetensors'], floorRepo));
run('git', ['commit', '-qm', 'base'], floorRepo);
const floorCheckoutS = medianSeconds(runs, () => run('git', ['checkout', '--', 'model.safetensors'], floorRepo), () => rmSync(join(floorRepo, 'model.safetensors')));
run('cmp', [model, join(floorRepo, 'model.safetensors')]);
rmSync(floorRepo, { recursive: true, force: true });

const rows: (string | number)[][] = [
  ['git add, pass-through filter (floor)', floorAddS, fileGiB / floorAddS, `${(floorAddS / opensslS).toFixed(2)}x openssl`, ''],
  ['git checkout, pass-through filter (floor)', floorCheckoutS, fileGiB / floorCheckoutS, `${(floorCheckoutS / cpS).toFixed(2)}x cp`, ''],
  ['openssl dgst -sha256 (baseline)', opensslS, fileGiB / opensslS, '', ''],
  ['cp (baseline)', cpS, fileGiB / cpS, '', ''],
  ['git-tensor: git add, compression off', rawAddS, fileGiB / rawAddS, `${(rawAddS / opensslS).toFixed(2)}x openssl, ${(rawAddS / floorAddS).toFixed(2)}x floor`, ''],
  ['git-tensor: git add', addS, fileGiB / addS, `${(addS / opensslS).toFixed(2)}x openssl (target <= 2x), ${(addS / floorAddS).toFixed(2)}x floor`, `${(addRssKiB / 1024).toFixed(0)} MiB`],
  ['git-tensor: git checkout', checkoutS, fileGiB / checkoutS, `${(checkoutS / cpS).toFixed(2)}x cp (target <= 2x), ${(checkoutS / floorCheckoutS).toFixed(2)}x floor`, `${(checkoutRssKiB / 1024).toFixed(0)} MiB`],
];

if (withLfs && ensureDebian('git-lfs', 'git-lfs')) {
  let lrepo = '';
  let j = 0;
  const lfsRepo = () => {
    lrepo = join(work, `lfs-${j++}`);
    rmSync(lrepo, { recursive: true, force: true });
    mkdirSync(lrepo);
    run('git', ['init', '-q'], lrepo);
    run('git', ['lfs', 'install', '--local'], lrepo);
    run('git', ['lfs', 'track', '*.safetensors'], lrepo);
    run('cp', [model, join(lrepo, 'model.safetensors')]);
  };
  const lfsAdd = medianSeconds(runs, () => run('git', ['add', 'model.safetensors'], lrepo), lfsRepo);
  run('git', ['commit', '-qm', 'base'], lrepo);
  const lfsCheckout = medianSeconds(runs, () => run('git', ['checkout', '--', 'model.safetensors'], lrepo), () => rmSync(join(lrepo, 'model.safetensors')));
  rows.push(['git-lfs: git add (peer)', lfsAdd, fileGiB / lfsAdd, `${(lfsAdd / addS).toFixed(2)}x git-tensor`, '']);
  rows.push(['git-lfs: git checkout (peer)', lfsCheckout, fileGiB / lfsCheckout, `${(lfsCheckout / checkoutS).toFixed(2)}x git-tensor`, '']);
} else if (withLfs) {
  rows.push(['git-lfs', 'not installed', '', '', '']);
}

printTable(`bench-filter: ${fileGiB.toFixed(2)} GiB checkpoint, ${specs.length} tensors (F32 + BF16), median of ${runs} runs`,
  ['operation', 'seconds', 'GiB/s', 'vs baseline', 'filter peak RSS'], rows);
printTable('store growth per new version', ['change', 'changed bytes', 'store growth', 'ratio', 'target'], [
  ['(a) 2 of 32 tensors rewritten', `${(changedABytes / MiB).toFixed(1)} MiB`, `${(growthA / MiB).toFixed(1)} MiB`, `${(growthA / changedABytes).toFixed(3)}x changed`, '<= 1.05x changed'],
  ['(b) 1% of rows of every matrix', `${(fileBytes * 0.01 / MiB).toFixed(1)} MiB`, `${(growthB / MiB).toFixed(1)} MiB`, `${(100 * growthB / fileBytes).toFixed(2)}% of file`, '<= 10% of file'],
]);
rmSync(work, { recursive: true, force: true });
