// Benchmark of the merge driver (issue: "Merge fine-tuned branches with plain `git merge`").
// Usage: npx tsx scripts/bench-merge.ts [--gib 1] [--runs 3] [--density 0.2] [--keep]  (--keep leaves the repositories for profiling)
// Generates a base checkpoint of ~16 F32 tensors and two dense fine-tunes (a delta of about 1e-3 on every
// element, different per branch), then times `git merge` in fresh repositories with the strategy set in
// `.gittensor` (task-arithmetic, then ties), the merge driver's peak RSS, and the same merges written with
// numpy (and torch when installed) reading the three safetensors files and writing the merged one: the
// baseline a user would otherwise script. Every element conflicts, so the strategy runs on all of them.

import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { serializeHeader } from '../src/format/safetensors.js';
import { benchEnv, GiB, medianSeconds, MiB, printTable, sh, tempDir, numberOption } from './bench-lib.js';

const args = process.argv.slice(2);
const gib = numberOption('gib', 1);
const runs = numberOption('runs', 3);
const density = numberOption('density', 0.2);
const TENSORS = 16;
const COLS = 4096;

// ---- the three checkpoints -------------------------------------------------------------------------

interface Spec { name: string; shape: [number, number]; bytes: number }

function modelSpec(totalBytes: number): Spec[] {
  const rows = Math.max(1, Math.round(totalBytes / TENSORS / (COLS * 4)));
  return Array.from({ length: TENSORS }, (_, i) => ({ name: `model.layers.${String(i).padStart(2, '0')}.weight`, shape: [rows, COLS], bytes: rows * COLS * 4 }));
}

/** xorshift32: fast, seeded, good enough for weights. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/** Writes base, ours and theirs tensor by tensor (never a whole file in memory). */
function writeModels(dir: string, specs: Spec[]): { base: string; ours: string; theirs: string } {
  const { prefix, headerBytes, layout } = serializeHeader(specs.map((s) => ({ name: s.name, dtype: 'F32', shape: s.shape, byteLength: s.bytes })), { format: 'pt' });
  const paths = { base: join(dir, 'base.safetensors'), ours: join(dir, 'ours.safetensors'), theirs: join(dir, 'theirs.safetensors') };
  const fds = Object.values(paths).map((p) => openSync(p, 'w'));
  for (const fd of fds) {
    writeSync(fd, prefix);
    writeSync(fd, headerBytes);
  }
  const [rb, ra, rt] = [rng(1), rng(2), rng(3)];
  for (const t of layout) {
    const n = (t.end - t.begin) / 4;
    const o = new Float32Array(n), a = new Float32Array(n), b = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      o[j] = rb() * 2 - 1;
      a[j] = o[j]! + (ra() - 0.5) * 2e-3;
      b[j] = o[j]! + (rt() - 0.5) * 2e-3;
    }
    [o, a, b].forEach((v, k) => writeSync(fds[k]!, new Uint8Array(v.buffer)));
  }
  for (const fd of fds) closeSync(fd);
  return paths;
}

// ---- git-tensor ----------------------------------------------------------------------------------------

const work = tempDir('bench-merge');
const home = join(work, 'home');
mkdirSync(home);
writeFileSync(join(home, '.gitconfig'), '[init]\n\tdefaultBranch = main\n[user]\n\tname = bench\n\temail = bench@example.com\n');
const env = benchEnv(home);
const run = (cmd: string, a: string[], cwd = work) => sh(cmd, a, { cwd, env });

const specs = modelSpec(gib * GiB);
const modelBytes = specs.reduce((s, t) => s + t.bytes, 0);
const modelGiB = modelBytes / GiB;
const largest = Math.max(...specs.map((s) => s.bytes));
process.stderr.write(`generating a ${modelGiB.toFixed(2)} GiB base model (${specs.length} F32 tensors) and two dense fine-tunes in ${work}...\n`);
const files = writeModels(work, specs);

/** base on main, theirs on task-b, ours on main: built once, copied for every run. */
const template = join(work, 'template');
mkdirSync(template);
process.stderr.write('committing the three versions (git add through the clean filter)...\n');
run('git', ['init', '-q'], template);
run('git-tensor', ['install'], template);
run('git-tensor', ['track', '*.safetensors'], template);
run('cp', [files.base, join(template, 'model.safetensors')]);
run('git', ['add', '.'], template);
run('git', ['commit', '-qm', 'base'], template);
run('git', ['switch', '-qc', 'task-b'], template);
run('cp', [files.theirs, join(template, 'model.safetensors')]);
run('git', ['commit', '-qam', 'fine-tune B'], template);
run('git', ['switch', '-q', 'main'], template);
run('cp', [files.ours, join(template, 'model.safetensors')]);
run('git', ['commit', '-qam', 'fine-tune A'], template);

/**
 * A fresh copy of the template: store packs hard-linked (they are immutable), everything else copied,
 * then the index refreshed so that `git merge` does not re-hash the working file inside the timing. The
 * file is dated a minute back first: git re-hashes ("racily clean") a file whose mtime is not older than
 * the index, which a copy made the same second always is and a user's checkpoint almost never is.
 */
function freshRepo(name: string, strategy: string, rssFile: string): string {
  const repo = join(work, name);
  rmSync(repo, { recursive: true, force: true });
  run('cp', ['-al', template, repo]);
  rmSync(join(repo, '.git', 'logs'), { recursive: true, force: true }); // reflogs are appended in place
  for (const f of ['model.safetensors', '.git/index', '.git/config']) run('cp', ['--remove-destination', join(template, f), join(repo, f)]);
  writeFileSync(join(repo, '.gittensor'), `[merge]\n\tstrategy = ${strategy}\n\tdensity = ${density}\n`);
  const minuteAgo = new Date(Date.now() - 60_000);
  utimesSync(join(repo, 'model.safetensors'), minuteAgo, minuteAgo);
  run('git', ['add', '.gittensor'], repo);
  run('git', ['commit', '-qm', `merge with ${strategy}`], repo);
  run('git', ['update-index', '-q', '--refresh'], repo);
  run('git', ['config', 'merge.tensor.driver', `/usr/bin/time -f "%e %M" -o ${rssFile} git-tensor merge-driver %O %A %B %P`], repo);
  return repo;
}

interface Measured { seconds: number; driverSeconds: number; rssKiB: number; output: string }

function benchGitTensor(strategy: string): Measured {
  const rssFile = join(work, `driver-${strategy}.txt`);
  const driver: number[][] = [];
  let repo = '';
  let k = 0;
  const seconds = medianSeconds(runs, () => run('git', ['merge', '--no-edit', '-q', 'task-b'], repo), () => {
    if (repo) {
      driver.push(readFileSync(rssFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number));
      rmSync(repo, { recursive: true, force: true });
    }
    repo = freshRepo(`repo-${strategy}-${k++}`, strategy, rssFile);
  });
  driver.push(readFileSync(rssFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number));
  const output = join(work, `git-tensor-${strategy}.safetensors`);
  run('cp', [join(repo, 'model.safetensors'), output]);
  rmSync(repo, { recursive: true, force: true });
  const med = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return { seconds, driverSeconds: med(driver.map((d) => d[0]!)), rssKiB: Math.max(...driver.map((d) => d[1]!)), output };
}

// ---- numpy / torch baselines ---------------------------------------------------------------------------

const PYTHON = String.raw`
import json, struct, sys
import numpy as np

def read_header(f):
    n = struct.unpack('<Q', f.read(8))[0]
    raw = f.read(n)
    header = json.loads(raw)
    header.pop('__metadata__', None)
    return n, raw, header

def ties(o, a, b, density, lam):
    n = o.size
    k = int(density * n)
    kept = []
    for d in (a - o, b - o):
        if k >= n:
            kept.append(d)
            continue
        mag = np.abs(d)
        threshold = np.partition(mag, n - k)[n - k] if k > 0 else np.inf
        kept.append(np.where(mag >= threshold, d, np.float32(0)))
    total = kept[0] + kept[1]
    majority = np.float32(1 if (total > 0).sum() >= (total < 0).sum() else -1)
    sign = np.sign(total)
    sign[sign == 0] = majority
    agree = [kd * sign > 0 for kd in kept]
    count = agree[0].astype(np.float32) + agree[1].astype(np.float32)
    summed = np.where(agree[0], kept[0], np.float32(0)) + np.where(agree[1], kept[1], np.float32(0))
    mean = summed / np.maximum(count, np.float32(1))
    return np.where(count > 0, o + np.float32(lam) * mean, o)

def task_arithmetic(o, a, b, lam):
    return o + np.float32(lam) * ((a - o) + (b - o))

def main():
    strategy, density, base, ours, theirs, out = sys.argv[1], float(sys.argv[2]), *sys.argv[3:]
    fo, fa, fb = open(base, 'rb'), open(ours, 'rb'), open(theirs, 'rb')
    n, raw, header = read_header(fo)
    read_header(fa), read_header(fb)
    start = 8 + n
    with open(out, 'wb') as w:
        w.write(struct.pack('<Q', n))
        w.write(raw)
        for name, info in sorted(header.items(), key=lambda kv: kv[1]['data_offsets'][0]):
            if info['dtype'] != 'F32':
                raise SystemExit('this baseline handles F32 only')
            begin, end = info['data_offsets']
            def load(f):
                f.seek(start + begin)
                return np.frombuffer(f.read(end - begin), dtype='<f4')
            o, a, b = load(fo), load(fa), load(fb)
            r = task_arithmetic(o, a, b, 1.0) if strategy == 'task-arithmetic' else ties(o, a, b, density, 1.0)
            w.write(r.astype('<f4', copy=False).tobytes())

main()
`;

const TORCH = PYTHON.replace('import numpy as np', 'import numpy as np\nimport torch').replace(
  "            r = task_arithmetic(o, a, b, 1.0) if strategy == 'task-arithmetic' else ties(o, a, b, density, 1.0)",
  [
    "            o, a, b = (torch.from_numpy(x.copy()) for x in (o, a, b))",
    "            if strategy == 'task-arithmetic':",
    '                r = o + ((a - o) + (b - o))',
    '            else:',
    '                k = int(density * o.numel())',
    '                ds = [a - o, b - o]',
    '                kept = [torch.where(d.abs() >= d.abs().kthvalue(o.numel() - k + 1).values, d, torch.zeros_like(d)) for d in ds]',
    '                total = kept[0] + kept[1]',
    "                sign = torch.sign(total)",
    "                sign[sign == 0] = 1.0 if (total > 0).sum() >= (total < 0).sum() else -1.0",
    '                agree = [kd * sign > 0 for kd in kept]',
    '                count = agree[0].float() + agree[1].float()',
    '                summed = torch.where(agree[0], kept[0], 0.0) + torch.where(agree[1], kept[1], 0.0)',
    '                r = torch.where(count > 0, o + summed / count.clamp(min=1), o)',
    '            r = r.numpy()',
  ].join('\n'),
);

const pyEnv = { ...env };
delete pyEnv.OPENBLAS_CORETYPE;
delete pyEnv.OPENBLAS_L2_SIZE;
const scriptPath = join(work, 'merge_numpy.py');
writeFileSync(scriptPath, PYTHON);
const torchPath = join(work, 'merge_torch.py');
writeFileSync(torchPath, TORCH);
const hasTorch = spawnSync('python3', ['-c', 'import torch'], { env: pyEnv }).status === 0;

function benchPython(script: string, label: string, strategy: string): Measured {
  const output = join(work, `${label}-${strategy}.safetensors`);
  const rssFile = join(work, `${label}-${strategy}.rss`);
  const seconds = medianSeconds(runs, () => sh('/usr/bin/time', ['-f', '%e %M', '-o', rssFile, 'python3', script, strategy, String(density), files.base, files.ours, files.theirs, output], { env: pyEnv }),
    () => rmSync(output, { force: true }));
  const [, rss] = readFileSync(rssFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { seconds, driverSeconds: NaN, rssKiB: rss!, output };
}

/**
 * Where git-tensor's merged file and numpy's differ, split by element class: numpy applies the formula
 * everywhere, git-tensor only to conflicting elements (changed on both sides to different bits) and takes
 * an element both sides changed to the same bits once (DESIGN.md "Merge semantics"), where task
 * arithmetic would add the delta twice.
 */
function compare(x: string, y: string): string[] {
  const code = [
    'import sys, struct, numpy as np',
    'def load(p):',
    '    f = open(p, "rb"); n = struct.unpack("<Q", f.read(8))[0]; f.seek(8 + n); return np.fromfile(f, dtype="<u4")',
    'g, p, o, a, b = (load(q) for q in sys.argv[1:6])',
    'diff = g != p',
    'conflict = (a != o) & (b != o) & (a != b)',
    'same = (a != o) & (a == b)',
    'gap = np.abs(g.view("<f4").astype(np.float64) - p.view("<f4").astype(np.float64))',
    'worst = float(gap[diff & conflict].max()) if (diff & conflict).any() else 0.0',
    '# one-sided elements: git-tensor takes the changed side exactly, TIES in numpy may trim the delta away',
    'print(g.size, int(conflict.sum()), int((diff & conflict).sum()), worst, int(same.sum()), int((diff & same).sum()), int((diff & ~conflict & ~same).sum()))',
  ].join('\n');
  const [n, conflicts, diffC, worst, same, diffSame, diffOther] = sh('python3', ['-c', code, x, y, files.base, files.ours, files.theirs], { env: pyEnv }).trim().split(' ');
  return [
    `${conflicts} of ${n}`, `${diffC} (max |diff| ${Number(worst).toExponential(2)})`,
    `${same} (${diffSame} differ: taken once, not twice)`, `${diffOther} (taken exactly from the side that changed)`,
  ];
}

// ---- run -------------------------------------------------------------------------------------------------

const rows: (string | number)[][] = [];
const checks: string[][] = [];
const rssTarget = (3 * largest + 200 * MiB) / MiB;
for (const strategy of ['task-arithmetic', 'ties']) {
  process.stderr.write(`${strategy}: numpy baseline...\n`);
  const np = benchPython(scriptPath, 'numpy', strategy);
  process.stderr.write(`${strategy}: git merge (fresh repository each run)...\n`);
  const gt = benchGitTensor(strategy);
  rows.push([`numpy ${strategy} (baseline)`, np.seconds, modelGiB / np.seconds, '', `${(np.rssKiB / 1024).toFixed(0)} MiB`, '', '']);
  if (hasTorch) {
    process.stderr.write(`${strategy}: torch...\n`);
    const th = benchPython(torchPath, 'torch', strategy);
    rows.push([`torch ${strategy} (peer)`, th.seconds, modelGiB / th.seconds, '', `${(th.rssKiB / 1024).toFixed(0)} MiB`, `${(th.seconds / np.seconds).toFixed(2)}x numpy`, '']);
  }
  const timeOk = gt.seconds <= 0.5 * np.seconds;
  const rssOk = gt.rssKiB / 1024 <= rssTarget;
  rows.push([`git-tensor: git merge, ${strategy}`, gt.seconds, modelGiB / gt.seconds, gt.driverSeconds, `${(gt.rssKiB / 1024).toFixed(0)} MiB (driver)`,
    `${(gt.seconds / np.seconds).toFixed(2)}x numpy`, `${timeOk ? 'ok' : 'MISSED'} time <= 0.5x; ${rssOk ? 'ok' : 'MISSED'} RSS <= ${rssTarget.toFixed(0)} MiB`]);
  checks.push([strategy, ...compare(gt.output, np.output)]);
}
if (!hasTorch) rows.push(['torch', 'not installed (python3 -c "import torch" failed)', '', '', '', '', '']);

printTable(`bench-merge: ${modelGiB.toFixed(2)} GiB F32 base + 2 dense fine-tunes, ${specs.length} tensors (largest ${(largest / MiB).toFixed(0)} MiB), ` +
  `ties density ${density}, median of ${runs} runs`,
  ['merge', 'seconds', 'GiB/s', 'driver s', 'peak RSS', 'vs numpy', 'targets'], rows);
printTable('merged result, git-tensor vs numpy, by element class', ['strategy', 'conflicting elements', 'of those, differing', 'same change on both sides', 'one-sided elements differing'], checks);
if (!args.includes('--keep')) rmSync(work, { recursive: true, force: true });
else process.stderr.write(`kept ${work}\n`);
