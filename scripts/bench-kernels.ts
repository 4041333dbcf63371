// Kernel throughput: GB/s of input per kernel and implementation, next to memcpy of the same number
// of bytes (native memcpy on the same threads, and Buffer.copy) and the same operation in numpy,
// all measured in this run. Medians of --runs runs after one warm-up. Prints a markdown table.
// Then matmul (y = x W^T + b) in GFLOP/s on the inference engine's shapes, next to numpy and PyTorch
// (Debian's /usr/bin/python3 with OpenBLAS) on the same shapes and threads.
//
//   npx tsx scripts/bench-kernels.ts [--mib 256] [--runs 5] [--threads 2] [--only changeMask,classify3,matmul]
//
// "GB/s" is input bytes / time (1 GB = 1e9 bytes); "% memcpy" compares with copying those bytes (the
// faster of native memcpy on the same threads and Buffer.copy). The TypeScript reference ('js') runs
// on a 1/16 slice (it is slow).

import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';

import { backend } from '../src/kernels/addon.js';
import {
  changeMask, classify3, dare, diffStats, fromF32, kernelInfo, maskedCombine, matmul, matvec, taskArithmetic, ties, toF32,
  type RunOptions,
} from '../src/kernels/index.js';

const { values: args } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    runs: { type: 'string', default: '5' },
    threads: { type: 'string', default: String(os.availableParallelism()) },
    only: { type: 'string' },
  },
});
const MIB = Number(args.mib);
const RUNS = Number(args.runs);
const ALL_THREADS = Number(args.threads);
const ONLY = args.only?.split(',');
const STREAMING = !ONLY || ONLY.some((w) => w !== 'matmul');
const N = STREAMING ? (MIB * 2 ** 20) / 4 : 0; // F32 elements per tensor (none when only matmul runs)

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(fn: () => Promise<unknown> | unknown, runs = RUNS): Promise<number> {
  await fn();
  const ts: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    await fn();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return median(ts);
}

// ---- inputs: a base tensor and two fine-tuned variants (a third of the elements changed) ----------

function fill(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let j = 0; j < n; j++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[j] = (s / 2 ** 32 - 0.5) * 0.1;
  }
  return out;
}

console.error(`bench-kernels: preparing 3 x ${MIB} MiB F32 tensors...`);
const o = fill(N, 1);
const a = o.slice();
const b = o.slice();
{
  const da = fill(N, 2), db = fill(N, 3);
  for (let j = 0; j < N; j += 3) a[j]! += da[j]!;
  for (let j = 1; j < N; j += 3) b[j]! += db[j]!;
  for (let j = 2; j < N; j += 9) a[j]! += da[j]!, b[j]! -= db[j]!;
}
const bf16 = await fromF32(a, 'BF16');
const mask = (await changeMask(o, b, 'F32')).mask;
const ROWS = Math.floor(Math.sqrt(N)), COLS = Math.floor(N / ROWS);
const x = new Float64Array(COLS).fill(1 / COLS);

interface Kernel {
  name: string;
  /** Input bytes the kernel reads (the GB/s and memcpy baseline are over these). */
  bytes: number;
  run: (opts: RunOptions, slice: number) => Promise<unknown>;
  numpy?: string;
}

const sl = (t: Float32Array, k: number) => (k === 1 ? t : t.subarray(0, Math.floor(t.length / k)));
const slb = (t: Uint8Array, k: number) => (k === 1 ? t : t.subarray(0, Math.floor(t.length / k)));
// Merges write into this (touched once, so that page faults of a fresh output are not timed).
const merged = new Float32Array(N).fill(1);

const ALL_KERNELS: Kernel[] = [
  { name: 'changeMask F32', bytes: 8 * N, run: (opt, k) => changeMask(sl(a, k), sl(b, k), 'F32', opt), numpy: 'change_mask' },
  { name: 'diffStats F32', bytes: 8 * N, run: (opt, k) => diffStats(sl(a, k), sl(b, k), 'F32', opt), numpy: 'diff_stats' },
  { name: 'classify3 F32', bytes: 12 * N, run: (opt, k) => classify3(sl(o, k), sl(a, k), sl(b, k), 'F32', opt), numpy: 'classify3' },
  { name: 'toF32 BF16', bytes: 2 * N, run: (opt, k) => toF32(slb(bf16, k), 'BF16', sl(merged, k), opt), numpy: 'bf16_to_f32' },
  { name: 'fromF32 F16', bytes: 4 * N, run: (opt, k) => fromF32(sl(a, k), 'F16', slb(new Uint8Array(merged.buffer), 2 * k), opt), numpy: 'f32_to_f16' },
  { name: 'maskedCombine F32', bytes: 8 * N, run: (opt, k) => maskedCombine({ a: sl(a, k), b: sl(b, k), mask, dtype: 'F32', out: sl(merged, k) }, opt), numpy: 'masked_combine' },
  { name: 'taskArithmetic F32 x2', bytes: 12 * N, run: (opt, k) => taskArithmetic({ base: sl(o, k), models: [sl(a, k), sl(b, k)], weights: [0.5, 0.5], dtype: 'F32', out: sl(merged, k) }, opt), numpy: 'task_arithmetic' },
  { name: 'dare F32 x2', bytes: 12 * N, run: (opt, k) => dare({ base: sl(o, k), models: [sl(a, k), sl(b, k)], density: 0.5, seed: 7, dtype: 'F32', out: sl(merged, k) }, opt) },
  { name: 'ties F32 x2', bytes: 12 * N, run: (opt, k) => ties({ base: sl(o, k), models: [sl(a, k), sl(b, k)], density: 0.2, dtype: 'F32', out: sl(merged, k) }, opt) },
  { name: `matvec F32 ${ROWS}x${COLS}`, bytes: 4 * ROWS * COLS, run: (opt, k) => matvec({ matrix: sl(a, 1).subarray(0, Math.floor(ROWS / k) * COLS), rows: Math.floor(ROWS / k), cols: COLS, dtype: 'F32', x }, opt), numpy: 'matvec' },
];
const KERNELS = ALL_KERNELS.filter((k) => !ONLY || ONLY.some((w) => k.name.startsWith(w)));

// ---- numpy, in its own process, on arrays of the same shape ---------------------------------------

const NUMPY = String.raw`
import json, sys, time
import numpy as np
n, runs, rows, cols = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
o = (rng.random(n, dtype=np.float32) - 0.5) * 0.1
a = o.copy(); b = o.copy()
a[0::3] += 0.01; b[1::3] += 0.01; a[2::9] += 0.01; b[2::9] -= 0.01
bf = (a.view(np.uint32) >> 16).astype(np.uint16)
mask = np.packbits(a != b, bitorder='little')
m = a[: rows * cols].reshape(rows, cols); x = np.full(cols, 1.0 / cols)
wide = np.ones(n, dtype=np.uint32); half = np.ones(n, dtype=np.float16)  # outputs, as ours: preallocated
def change_mask():
    d = a.view(np.uint32) != b.view(np.uint32)
    return np.packbits(d, bitorder='little'), np.count_nonzero(d)
def classify3():
    ca, cb = a != o, b != o
    c = ca & cb & (a != b)
    return np.count_nonzero(ca), np.count_nonzero(cb), np.count_nonzero(c)
def diff_stats():
    x64, y64 = a.astype(np.float64), b.astype(np.float64); d = x64 - y64
    return (np.dot(x64, x64), np.dot(y64, y64), np.dot(x64, y64), np.dot(d, d), np.abs(d).max(),
            np.count_nonzero(a.view(np.uint32) != b.view(np.uint32)))
ops = {
    'change_mask': change_mask, 'classify3': classify3, 'diff_stats': diff_stats,
    'bf16_to_f32': lambda: np.left_shift(bf, 16, out=wide, dtype=np.uint32),
    'f32_to_f16': lambda: np.copyto(half, a, casting='same_kind'),
    'masked_combine': lambda: np.where(np.unpackbits(mask, bitorder='little')[:n].view(bool), b, a),
    'task_arithmetic': lambda: o + np.float32(0.5) * (a - o) + np.float32(0.5) * (b - o),
    'matvec': lambda: m @ x,
}
out = {}
for name in sys.argv[5].split(','):
    if name not in ops: continue
    f = ops[name]; f(); ts = []
    for _ in range(runs):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    out[name] = sorted(ts)[len(ts) // 2]
print(json.dumps(out))
`;

function numpyTimes(names: string[]): Record<string, number> {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE; // these two break OpenBLAS's CPU detection on this kind of machine
  delete env.OPENBLAS_L2_SIZE;
  console.error('bench-kernels: running numpy...');
  const r = spawnSync('python3', ['-c', NUMPY, String(N), String(RUNS), String(ROWS), String(COLS), names.join(',')], {
    env, encoding: 'utf8', maxBuffer: 1 << 20,
  });
  if (r.status !== 0) {
    console.error(`bench-kernels: numpy skipped (${r.stderr.trim().split('\n').at(-1) ?? r.status})`);
    return {};
  }
  return JSON.parse(r.stdout) as Record<string, number>;
}

// ---- measure --------------------------------------------------------------------------------------

const info = kernelInfo();
const addon = backend().addon;
const numpy = KERNELS.length ? numpyTimes(KERNELS.flatMap((k) => (k.numpy ? [k.numpy] : []))) : {};
const copyCache = new Map<string, number>();

/** Seconds to memcpy `bytes` with the native copy on `threads` threads (or Buffer.copy). */
async function memcpyTime(bytes: number, threads: number | 'Buffer.copy'): Promise<number> {
  const key = `${bytes}/${threads}`;
  if (!copyCache.has(key)) {
    const src = Buffer.alloc(bytes, 1), dst = Buffer.alloc(bytes, 2); // touched: no zero-page reads
    const t = threads === 'Buffer.copy' || !addon
      ? await time(() => src.copy(dst))
      : await time(() => addon.copy(threads, src, dst));
    copyCache.set(key, t);
  }
  return copyCache.get(key)!;
}

const gbs = (bytes: number, s: number) => (bytes / s / 1e9).toFixed(2);
const rows: string[][] = [];
const plans: { impl: string; threads: number; slice: number }[] = [
  ...info.supported.filter((i) => i !== 'js').map((impl) => ({ impl, threads: 1, slice: 1 })),
  ...(ALL_THREADS > 1 && info.addonLoaded ? [{ impl: info.active, threads: ALL_THREADS, slice: 1 }] : []),
  { impl: 'js', threads: 1, slice: 16 },
];

for (const k of KERNELS) {
  const npSec = k.numpy ? numpy[k.numpy] : undefined;
  for (const p of plans) {
    console.error(`bench-kernels: ${k.name} ${p.impl} x${p.threads}`);
    const runs = p.impl === 'js' || p.impl === 'scalar' ? Math.min(RUNS, 3) : RUNS;
    const sec = await time(() => k.run({ implementation: p.impl, threads: p.threads }, p.slice), runs);
    const bytes = k.bytes / p.slice;
    // The baseline is the faster of native memcpy on the same threads and Buffer.copy (one thread,
    // but it gets glibc's non-temporal stores for large copies).
    const copySec = Math.min(await memcpyTime(k.bytes, p.threads), await memcpyTime(k.bytes, 'Buffer.copy')) / p.slice;
    rows.push([
      k.name, p.impl, String(p.threads), (sec * 1e3).toFixed(1), gbs(bytes, sec),
      gbs(bytes, copySec), `${Math.round((100 * copySec) / sec)}%`,
      npSec === undefined ? '-' : (npSec * 1e3).toFixed(1),
      npSec === undefined ? '-' : `${((npSec / p.slice) / sec).toFixed(1)}x`,
    ]);
  }
}
if (KERNELS.length) {
  const bufferCopy = await memcpyTime(8 * N, 'Buffer.copy');

  const header = ['kernel', 'impl', 'threads', 'ms', 'GB/s', 'memcpy GB/s', '% memcpy', 'numpy ms', 'vs numpy'];
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  console.log(`${MIB} MiB per F32 tensor, median of ${RUNS} runs; ${cpu}, ${os.availableParallelism()} threads; ` +
    `Node ${process.version}; kernels ${info.supported.join(', ')} (active ${info.active}); ` +
    `Buffer.copy of ${2 * MIB} MiB: ${gbs(8 * N, bufferCopy)} GB/s. 'js' runs on a 1/16 slice.\n`);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map((h, i) => (i < 3 ? '---' : '---:')).join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

// ---- matmul: GFLOP/s on the inference engine's shapes ---------------------------------------------

interface MatmulShape {
  name: string;
  rows: number;
  inDim: number;
  outDim: number;
}

// GPT-2-124M's linear layers over a batch of 100 probes x 14 tokens, its LM head on the last token of
// each probe, and one probe alone.
const MATMUL_SHAPES: MatmulShape[] = [
  { name: 'attn qkv 1400x768 -> 2304', rows: 1400, inDim: 768, outDim: 2304 },
  { name: 'attn proj 1400x768 -> 768', rows: 1400, inDim: 768, outDim: 768 },
  { name: 'mlp fc 1400x768 -> 3072', rows: 1400, inDim: 768, outDim: 3072 },
  { name: 'mlp proj 1400x3072 -> 768', rows: 1400, inDim: 3072, outDim: 768 },
  { name: 'lm head 100x768 -> 50257', rows: 100, inDim: 768, outDim: 50257 },
  { name: 'one probe fc 14x768 -> 3072', rows: 14, inDim: 768, outDim: 3072 },
];

const MATMUL_PY = String.raw`
import json, sys, time
import numpy as np
import torch
shapes, runs, threads = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
def median(f):
    f(); ts = []; cs = []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time(); f()
        ts.append(time.perf_counter() - t0); cs.append(time.process_time() - c0)
    return sorted(ts)[len(ts) // 2], sorted(cs)[len(cs) // 2]
out = []
for rows, k, n in shapes:
    rng = np.random.default_rng(0)
    x = (rng.random((rows, k), dtype=np.float32) - 0.5); w = (rng.random((n, k), dtype=np.float32) - 0.5)
    b = rng.random(n, dtype=np.float32); y = np.empty((rows, n), dtype=np.float32)
    tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    with torch.no_grad():
        (nw, nc), (tw_, tc) = median(lambda: np.add(np.matmul(x, w.T, out=y), b, out=y)), median(lambda: torch.nn.functional.linear(tx, tw, tb))
        out.append({'numpy': nw, 'numpyCpu': nc, 'torch': tw_, 'torchCpu': tc})
print(json.dumps(out))
`;

/** numpy and torch seconds per shape, from Debian's python3 (its numpy and torch use OpenBLAS). */
interface PyTimes { numpy: number; numpyCpu: number; torch: number; torchCpu: number }

function pythonMatmulTimes(shapes: MatmulShape[], threads: number): PyTimes[] | null {
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  console.error('bench-kernels: running numpy and torch matmul...');
  const r = spawnSync('/usr/bin/python3', ['-c', MATMUL_PY, JSON.stringify(shapes.map((s) => [s.rows, s.inDim, s.outDim])),
    String(RUNS), String(threads)], { env, encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) {
    console.error(`bench-kernels: numpy/torch matmul skipped (${r.stderr?.trim().split('\n').at(-1) ?? r.status})`);
    return null;
  }
  return JSON.parse(r.stdout) as PyTimes[];
}

function uniform(n: number, seed: number): Float32Array {
  const out = fill(n, seed);
  for (let j = 0; j < n; j++) out[j]! *= 10;
  return out;
}

if (!ONLY || ONLY.includes('matmul')) {
  const py = pythonMatmulTimes(MATMUL_SHAPES, ALL_THREADS);
  const gflops = (s: MatmulShape, rows: number, sec: number) => ((2 * rows * s.inDim * s.outDim) / sec / 1e9).toFixed(1);
  const mmRows: string[][] = [];
  const mmPlans = [
    ...(info.addonLoaded ? [{ impl: info.active, threads: ALL_THREADS }] : []),
    ...info.supported.filter((i) => i !== 'js').map((impl) => ({ impl, threads: 1 })),
    { impl: 'js', threads: 1 },
  ];
  for (const [i, s] of MATMUL_SHAPES.entries()) {
    const x = uniform(s.rows * s.inDim, 10 + i), w = uniform(s.outDim * s.inDim, 20 + i), bias = uniform(s.outDim, 30 + i);
    const out = new Float32Array(s.rows * s.outDim).fill(1);
    for (const p of mmPlans) {
      // The reference runs on 1/64 of the rows (it is slow); scalar on 1/16.
      const rows = Math.max(1, Math.floor(s.rows / (p.impl === 'js' ? 64 : p.impl === 'scalar' ? 16 : 1)));
      console.error(`bench-kernels: matmul ${s.name} ${p.impl} x${p.threads}`);
      const call = () => matmul({
        x: x.subarray(0, rows * s.inDim), w, bias, rows, inDim: s.inDim, outDim: s.outDim, out: out.subarray(0, rows * s.outDim),
      }, { implementation: p.impl, threads: p.threads });
      await call();
      const walls: number[] = [], cpus: number[] = [];
      for (let r = 0; r < (p.impl === 'js' || p.impl === 'scalar' ? Math.min(RUNS, 3) : RUNS); r++) {
        const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
        await call();
        const c = process.cpuUsage(c0);
        walls.push(Number(process.hrtime.bigint() - t0) / 1e9);
        cpus.push((c.user + c.system) / 1e6);
      }
      const sec = median(walls), cpu = median(cpus);
      const t = py?.[i];
      mmRows.push([s.name, p.impl + (rows === s.rows ? '' : ` (${rows} rows)`), String(p.threads), ((sec * s.rows) / rows * 1e3).toFixed(1),
        gflops(s, rows, sec), gflops(s, rows, cpu), t ? `${gflops(s, s.rows, t.numpy)} / ${gflops(s, s.rows, t.numpyCpu)}` : '-',
        t ? `${gflops(s, s.rows, t.torch)} / ${gflops(s, s.rows, t.torchCpu)}` : '-',
        t ? `${(t.torch / ((sec * s.rows) / rows)).toFixed(2)}x / ${(t.torchCpu / ((cpu * s.rows) / rows)).toFixed(2)}x` : '-']);
    }
  }
  const header = ['shape (rows x in -> out)', 'impl', 'threads', 'ms', 'GFLOP/s', 'GFLOP/CPU-s', `numpy x${ALL_THREADS}`,
    `torch x${ALL_THREADS}`, 'vs torch'];
  console.log(`\nmatmul y = x W^T + b, f32, median of ${RUNS} runs; ms for the whole shape (scaled up where fewer rows ran); ` +
    `GFLOP per second of wall time and per CPU-second (user + system of every thread: on a busy machine the fairer figure); ` +
    `numpy and torch: Debian /usr/bin/python3 (OpenBLAS), ${ALL_THREADS} threads, wall / CPU GFLOP/s; vs torch: wall / CPU.\n`);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map((_, i) => (i < 3 ? '---' : '---:')).join('|')}|`);
  for (const r of mmRows) console.log(`| ${r.join(' | ')} |`);
}
