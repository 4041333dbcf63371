// Probing speed of the built-in inference engine against a plain PyTorch script doing the same forwards,
// measured in the same run: a seeded random GPT-2-124M-shaped model (GPT2LMHeadModel) and a
// BERT-base-shaped one (BertForMaskedLM), F32 safetensors with Hugging Face tensor names, 100 probes of
// about 14 random token ids each. Every contender is a whole process, timed from start to exit
// (reading the weights included), with its CPU time (user + system) and peak RSS from /usr/bin/time;
// medians of --runs runs. On a busy machine wall times mislead (torch's 2 OpenMP threads suffer most
// from oversubscription): compare the CPU column too.
//
//   npx tsx scripts/bench-probe.ts [--runs 3] [--probes 100] [--models gpt2,bert] [--threads 2] [--keep]
//
// - torch: /usr/bin/python3 (Debian python3-torch, OpenBLAS), torch.set_num_threads(threads), the model
//   written by hand with torch.nn (transformers is not installed), weights parsed with json + torch,
//   one forward per probe over the whole sequence, as a user script would.
// - engine: src/model's loadModel + one logits() call over all probes (one batch: the weights are read
//   once), in a child `node --import tsx` process (so its wall time includes compiling the TypeScript).
// - command: `git tensor probe --path <model.safetensors> --probes <probes.jsonl> --json` (bin/git-tensor,
//   so run `npm run build` first), the same probes as text prompts through a generated word-level
//   tokenizer.json (WordPiece over whole words "t<id>", BERT's [CLS]/[SEP]/[MASK]); prompt-only probes,
//   so each is one sequence scored for its top-5.
// The logits at the probed positions are compared: max |engine - torch| / max |torch| and top-1 agreement.

import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { printTable, ROOT, tempDir } from './bench-lib.js';

// ---- the child: run the engine on one model directory -------------------------------------------

if (process.argv[2] === '--engine-child') {
  const dir = process.argv[3]!;
  const t0 = performance.now();
  const { loadModel, fileTensorSource } = await import('../src/model/index.js');
  const probes = JSON.parse(readFileSync(join(dir, 'probes.json'), 'utf8')) as { ids: number[]; positions: number[] }[];
  const model = await loadModel({
    label: dir, config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    tensors: await fileTensorSource(join(dir, 'model.safetensors')),
  });
  const t1 = performance.now();
  const logits = await model.logits(probes);
  const t2 = performance.now();
  const fd = openSync(join(dir, 'engine.f32'), 'w');
  for (const l of logits) writeSync(fd, new Uint8Array(l.buffer, l.byteOffset, l.byteLength));
  closeSync(fd);
  console.log(JSON.stringify({ load: (t1 - t0) / 1e3, forward: (t2 - t1) / 1e3 }));
  process.exit(0);
}

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    probes: { type: 'string', default: '100' },
    models: { type: 'string', default: 'gpt2,bert' },
    threads: { type: 'string', default: String(Math.min(2, os.availableParallelism())) },
    keep: { type: 'boolean', default: false },
  },
});
const RUNS = Number(args.runs), PROBES = Number(args.probes), THREADS = Number(args.threads);

// ---- models -----------------------------------------------------------------------------------------

/** xorshift32 uniforms in [-a, a): weights of a random model (std a / sqrt 3). */
function filler(seed: number): (t: Float32Array, a: number) => Float32Array {
  let s = seed >>> 0 || 1;
  return (t, a) => {
    const k = (2 * a) / 4294967296;
    for (let j = 0; j < t.length; j++) {
      s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
      t[j] = (s >>> 0) * k - a;
    }
    return t;
  };
}

type Init = 'weight' | 'small' | 'one' | 'zero';
interface TensorSpec { name: string; shape: number[]; init: Init }

/** Writes an F32 safetensors file tensor by tensor (never the whole model in memory). */
function writeSafetensors(file: string, specs: TensorSpec[], seed: number): number {
  const fill = filler(seed);
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of specs) {
    const bytes = 4 * t.shape.reduce((a, b) => a * b, 1);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const fd = openSync(file, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeSync(fd, len);
  writeSync(fd, Buffer.from(json));
  const std = 0.02 * Math.sqrt(3);
  for (const t of specs) {
    const a = new Float32Array(t.shape.reduce((x, y) => x * y, 1));
    if (t.init === 'weight') fill(a, std);
    else if (t.init === 'small') fill(a, 0.01);
    else if (t.init === 'one') a.fill(1);
    writeSync(fd, new Uint8Array(a.buffer));
  }
  closeSync(fd);
  return offset;
}

interface ModelSpec {
  name: string;
  config: Record<string, unknown>;
  tensors: TensorSpec[];
  vocab: number;
}

function gpt2(): ModelSpec {
  const E = 768, L = 12, V = 50257, P = 1024;
  const t: TensorSpec[] = [
    { name: 'transformer.wte.weight', shape: [V, E], init: 'weight' },
    { name: 'transformer.wpe.weight', shape: [P, E], init: 'weight' },
  ];
  for (let i = 0; i < L; i++) {
    const h = `transformer.h.${i}`;
    t.push(
      { name: `${h}.ln_1.weight`, shape: [E], init: 'one' }, { name: `${h}.ln_1.bias`, shape: [E], init: 'zero' },
      { name: `${h}.attn.c_attn.weight`, shape: [E, 3 * E], init: 'weight' }, { name: `${h}.attn.c_attn.bias`, shape: [3 * E], init: 'small' },
      { name: `${h}.attn.c_proj.weight`, shape: [E, E], init: 'weight' }, { name: `${h}.attn.c_proj.bias`, shape: [E], init: 'small' },
      { name: `${h}.ln_2.weight`, shape: [E], init: 'one' }, { name: `${h}.ln_2.bias`, shape: [E], init: 'zero' },
      { name: `${h}.mlp.c_fc.weight`, shape: [E, 4 * E], init: 'weight' }, { name: `${h}.mlp.c_fc.bias`, shape: [4 * E], init: 'small' },
      { name: `${h}.mlp.c_proj.weight`, shape: [4 * E, E], init: 'weight' }, { name: `${h}.mlp.c_proj.bias`, shape: [E], init: 'small' },
    );
  }
  t.push({ name: 'transformer.ln_f.weight', shape: [E], init: 'one' }, { name: 'transformer.ln_f.bias', shape: [E], init: 'zero' });
  return {
    name: 'gpt2', vocab: V, tensors: t,
    config: {
      architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_layer: L, n_embd: E, n_head: 12, vocab_size: V, n_positions: P,
      n_ctx: P, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, tie_word_embeddings: true,
    },
  };
}

function bert(): ModelSpec {
  const E = 768, L = 12, V = 30522, F = 3072, P = 512;
  const t: TensorSpec[] = [];
  const lin = (n: string, out: number, inp: number) => t.push(
    { name: `${n}.weight`, shape: [out, inp], init: 'weight' }, { name: `${n}.bias`, shape: [out], init: 'small' });
  const ln = (n: string) => t.push({ name: `${n}.weight`, shape: [E], init: 'one' }, { name: `${n}.bias`, shape: [E], init: 'zero' });
  t.push(
    { name: 'bert.embeddings.word_embeddings.weight', shape: [V, E], init: 'weight' },
    { name: 'bert.embeddings.position_embeddings.weight', shape: [P, E], init: 'weight' },
    { name: 'bert.embeddings.token_type_embeddings.weight', shape: [2, E], init: 'weight' },
  );
  ln('bert.embeddings.LayerNorm');
  for (let i = 0; i < L; i++) {
    const l = `bert.encoder.layer.${i}`;
    lin(`${l}.attention.self.query`, E, E);
    lin(`${l}.attention.self.key`, E, E);
    lin(`${l}.attention.self.value`, E, E);
    lin(`${l}.attention.output.dense`, E, E);
    ln(`${l}.attention.output.LayerNorm`);
    lin(`${l}.intermediate.dense`, F, E);
    lin(`${l}.output.dense`, E, F);
    ln(`${l}.output.LayerNorm`);
  }
  lin('cls.predictions.transform.dense', E, E);
  ln('cls.predictions.transform.LayerNorm');
  t.push({ name: 'cls.predictions.bias', shape: [V], init: 'small' });
  return {
    name: 'bert', vocab: V, tensors: t,
    config: {
      architectures: ['BertForMaskedLM'], model_type: 'bert', hidden_size: E, num_hidden_layers: L, num_attention_heads: 12,
      intermediate_size: F, vocab_size: V, max_position_embeddings: P, type_vocab_size: 2, hidden_act: 'gelu',
      layer_norm_eps: 1e-12, tie_word_embeddings: true,
    },
  };
}

/**
 * A tokenizer.json whose every id is a whole word ("t<id>", BERT's specials by their names) and the
 * probes as prompts in those words: the probe command then runs exactly the ids of probes.json.
 */
function writeTextProbes(m: ModelSpec, probes: { ids: number[]; positions: number[] }[], mdir: string): void {
  const specials: Record<number, string> = m.name === 'bert' ? { 0: '[PAD]', 100: '[UNK]', 101: '[CLS]', 102: '[SEP]', 103: '[MASK]' } : { [m.vocab - 1]: '<|endoftext|>' };
  const word = (id: number) => specials[id] ?? `t${id}`;
  const vocab: Record<string, number> = {};
  for (let id = 0; id < m.vocab; id++) vocab[word(id)] = id;
  const added = Object.entries(specials).map(([id, content]) => ({
    id: Number(id), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  writeFileSync(join(mdir, 'tokenizer.json'), JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: m.name === 'bert' ? { type: 'BertProcessing', sep: ['[SEP]', 102], cls: ['[CLS]', 101] } : null,
    decoder: null,
    model: { type: 'WordPiece', unk_token: m.name === 'bert' ? '[UNK]' : '<|endoftext|>', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  }));
  writeFileSync(join(mdir, 'tokenizer_config.json'), JSON.stringify(m.name === 'bert' ? { mask_token: '[MASK]' } : {}));
  const lines = probes.map((p, i) => {
    const words = (m.name === 'bert' ? p.ids.slice(1, -1) : p.ids).map(word);
    return JSON.stringify({ id: `p${i}`, prompt: words.join(' ') });
  });
  writeFileSync(join(mdir, 'probes.jsonl'), lines.join('\n') + '\n');
}

/** 12 to 16 random ids per probe (14 on average); GPT-2 is probed at the last token, BERT at a [MASK]. */
function makeProbes(m: ModelSpec, seed: number): { ids: number[]; positions: number[] }[] {
  let s = seed;
  const next = (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
  return Array.from({ length: PROBES }, () => {
    const n = 12 + next(5);
    if (m.name === 'gpt2') {
      const ids = Array.from({ length: n }, () => next(m.vocab));
      return { ids, positions: [n - 1] };
    }
    const ids = Array.from({ length: n }, () => 1000 + next(m.vocab - 1000));
    ids[0] = 101; // [CLS]
    ids[n - 1] = 102; // [SEP]
    const mask = 1 + next(n - 2);
    ids[mask] = 103; // [MASK]
    return { ids, positions: [mask] };
  });
}

// ---- the PyTorch baseline ---------------------------------------------------------------------------

const TORCH = String.raw`
import json, math, struct, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

t0 = time.perf_counter()
d, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
cfg = json.load(open(d + '/config.json'))
probes = json.load(open(d + '/probes.json'))

def load_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == '__metadata__': continue
        a, b = info['data_offsets']
        out[name] = torch.frombuffer(data, dtype=torch.float32, count=(b - a) // 4, offset=a).reshape(info['shape'])
    return out

class Conv1D(nn.Module):  # GPT-2 stores [in, out]
    def __init__(self, nin, nout):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(nin, nout)); self.bias = nn.Parameter(torch.empty(nout))
    def forward(self, x): return torch.addmm(self.bias, x, self.weight)

def attend(q, k, v, heads, causal):
    T, E = q.shape; D = E // heads
    q, k, v = (t.view(T, heads, D).transpose(0, 1) for t in (q, k, v))
    s = q @ k.transpose(1, 2) / math.sqrt(D)
    if causal: s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float('-inf'))
    return (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(T, E)

def gelu_new(x): return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

class GPT2Block(nn.Module):
    def __init__(self, E):
        super().__init__()
        self.ln_1 = nn.LayerNorm(E, eps=cfg['layer_norm_epsilon']); self.ln_2 = nn.LayerNorm(E, eps=cfg['layer_norm_epsilon'])
        self.attn = nn.Module(); self.attn.c_attn = Conv1D(E, 3 * E); self.attn.c_proj = Conv1D(E, E)
        self.mlp = nn.Module(); self.mlp.c_fc = Conv1D(E, 4 * E); self.mlp.c_proj = Conv1D(4 * E, E)
    def forward(self, x):
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(x.shape[1], dim=1)
        x = x + self.attn.c_proj(attend(q, k, v, cfg['n_head'], True))
        return x + self.mlp.c_proj(gelu_new(self.mlp.c_fc(self.ln_2(x))))

class GPT2(nn.Module):
    def __init__(self):
        super().__init__()
        E = cfg['n_embd']
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(cfg['vocab_size'], E); self.transformer.wpe = nn.Embedding(cfg['n_positions'], E)
        self.transformer.h = nn.ModuleList(GPT2Block(E) for _ in range(cfg['n_layer']))
        self.transformer.ln_f = nn.LayerNorm(E, eps=cfg['layer_norm_epsilon'])
    def forward(self, ids):
        t = self.transformer
        x = t.wte(ids) + t.wpe(torch.arange(len(ids)))
        for block in t.h: x = block(x)
        return t.ln_f(x) @ t.wte.weight.T

class BertLayer(nn.Module):
    def __init__(self, E, Fd, eps):
        super().__init__()
        self.attention = nn.Module(); self.attention.self = nn.Module(); self.attention.output = nn.Module()
        s = self.attention.self; s.query, s.key, s.value = nn.Linear(E, E), nn.Linear(E, E), nn.Linear(E, E)
        self.attention.output.dense = nn.Linear(E, E); self.attention.output.LayerNorm = nn.LayerNorm(E, eps=eps)
        self.intermediate = nn.Module(); self.intermediate.dense = nn.Linear(E, Fd)
        self.output = nn.Module(); self.output.dense = nn.Linear(Fd, E); self.output.LayerNorm = nn.LayerNorm(E, eps=eps)
    def forward(self, x):
        s, o = self.attention.self, self.attention.output
        x = o.LayerNorm(x + o.dense(attend(s.query(x), s.key(x), s.value(x), cfg['num_attention_heads'], False)))
        return self.output.LayerNorm(x + self.output.dense(F.gelu(self.intermediate.dense(x))))

class Bert(nn.Module):
    def __init__(self):
        super().__init__()
        E, eps = cfg['hidden_size'], cfg['layer_norm_eps']
        self.bert = nn.Module(); self.bert.embeddings = e = nn.Module()
        e.word_embeddings = nn.Embedding(cfg['vocab_size'], E); e.position_embeddings = nn.Embedding(cfg['max_position_embeddings'], E)
        e.token_type_embeddings = nn.Embedding(cfg['type_vocab_size'], E); e.LayerNorm = nn.LayerNorm(E, eps=eps)
        self.bert.encoder = nn.Module()
        self.bert.encoder.layer = nn.ModuleList(BertLayer(E, cfg['intermediate_size'], eps) for _ in range(cfg['num_hidden_layers']))
        self.cls = nn.Module(); self.cls.predictions = p = nn.Module(); p.transform = nn.Module()
        p.transform.dense = nn.Linear(E, E); p.transform.LayerNorm = nn.LayerNorm(E, eps=eps)
        p.bias = nn.Parameter(torch.empty(cfg['vocab_size']))
    def forward(self, ids):
        e = self.bert.embeddings
        x = e.word_embeddings(ids) + e.position_embeddings(torch.arange(len(ids))) + e.token_type_embeddings.weight[0]
        x = e.LayerNorm(x)
        for layer in self.bert.encoder.layer: x = layer(x)
        p = self.cls.predictions
        h = p.transform.LayerNorm(F.gelu(p.transform.dense(x)))
        return h @ e.word_embeddings.weight.T + p.bias

model = GPT2() if cfg['architectures'][0] == 'GPT2LMHeadModel' else Bert()
model.load_state_dict(load_safetensors(d + '/model.safetensors'))
model.eval()
t1 = time.perf_counter()
rows = []
with torch.no_grad():
    for p in probes:
        logits = model(torch.tensor(p['ids']))
        rows.append(logits[p['positions']])
t2 = time.perf_counter()
torch.cat(rows).numpy().tofile(d + '/torch.f32')
print(json.dumps({'load': t1 - t0, 'forward': t2 - t1}))
`;

// ---- measure ------------------------------------------------------------------------------------------

interface Run { wall: number; cpu: number; load: number; forward: number; rssMiB: number }

/** Runs one contender under /usr/bin/time: wall seconds, its own load/forward split, peak RSS. */
function runOnce(cmd: string, argv: string[], env: NodeJS.ProcessEnv): Run {
  const timeFile = join(os.tmpdir(), `bench-probe-time-${process.pid}`);
  const t = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, cmd, ...argv], { env, encoding: 'utf8', maxBuffer: 1 << 26 });
  const wall = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}):\n${r.stderr}`);
  // The children print {load, forward} last; the probe command prints its results (no split).
  let split = { load: Number.NaN, forward: Number.NaN };
  try {
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { load?: unknown; forward?: unknown };
    if (typeof last.load === 'number' && typeof last.forward === 'number') split = { load: last.load, forward: last.forward };
  } catch {
    // not a timing line
  }
  const [user, sys, rssKiB] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  rmSync(timeFile, { force: true });
  return { wall, cpu: user! + sys!, ...split, rssMiB: rssKiB! / 1024 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** max |a - b| / max |b|, and how many rows of `vocab` logits have the same argmax. */
function compare(a: Float32Array, b: Float32Array, vocab: number): { rel: number; top1: number; rows: number } {
  let diff = 0, scale = 0, same = 0;
  const rows = b.length / vocab;
  for (let r = 0; r < rows; r++) {
    let ia = 0, ib = 0;
    for (let j = 0; j < vocab; j++) {
      const x = a[r * vocab + j]!, y = b[r * vocab + j]!;
      diff = Math.max(diff, Math.abs(x - y));
      scale = Math.max(scale, Math.abs(y));
      if (x > a[r * vocab + ia]!) ia = j;
      if (y > b[r * vocab + ib]!) ib = j;
    }
    if (ia === ib) same++;
  }
  return { rel: diff / scale, top1: same, rows };
}

const readF32 = (file: string) => {
  const b = readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

if (!existsSync('/usr/bin/time')) throw new Error('bench-probe needs /usr/bin/time (Debian: apt-get install time) for peak RSS');
const dir = tempDir('bench-probe');
const baseEnv: NodeJS.ProcessEnv = { ...process.env, GIT_TENSOR_THREADS: String(THREADS), OMP_NUM_THREADS: String(THREADS) };
delete baseEnv.OPENBLAS_CORETYPE;
delete baseEnv.OPENBLAS_L2_SIZE;
const table: (string | number)[][] = [];
const notes: string[] = [];
try {
  for (const spec of [gpt2(), bert()].filter((m) => args.models!.split(',').includes(m.name))) {
    const mdir = join(dir, spec.name);
    spawnSync('mkdir', ['-p', mdir]);
    console.error(`bench-probe: writing ${spec.name} (seeded random weights)...`);
    const bytes = writeSafetensors(join(mdir, 'model.safetensors'), spec.tensors, spec.name === 'gpt2' ? 1 : 2);
    writeFileSync(join(mdir, 'config.json'), JSON.stringify(spec.config, null, 2));
    const probes = makeProbes(spec, spec.name === 'gpt2' ? 3 : 4);
    writeFileSync(join(mdir, 'probes.json'), JSON.stringify(probes));
    writeTextProbes(spec, probes, mdir);
    const tokens = probes.reduce((s, p) => s + p.ids.length, 0);
    const f32MiB = bytes / 2 ** 20;

    const contenders: { name: string; cmd: string; argv: string[] }[] = [
      { name: `torch (${THREADS} threads, one forward per probe)`, cmd: '/usr/bin/python3', argv: ['-c', TORCH, mdir, String(THREADS)] },
      { name: `engine (${THREADS} threads, one batch)`, cmd: process.execPath, argv: ['--import', 'tsx', join(ROOT, 'scripts/bench-probe.ts'), '--engine-child', mdir] },
    ];
    if (existsSync(join(ROOT, 'dist/commands/probe.js'))) {
      contenders.push({ name: 'git tensor probe --path', cmd: join(ROOT, 'bin/git-tensor'),
        argv: ['probe', '--path', join(mdir, 'model.safetensors'), '--probes', join(mdir, 'probes.jsonl'), '--json'] });
    } else if (spec.name === 'gpt2') {
      notes.push('git tensor probe: not timed (dist/commands/probe.js missing: run `npm run build`)');
    }
    const results: Run[][] = contenders.map(() => []);
    for (let r = 0; r < RUNS; r++) {
      contenders.forEach((c, i) => {
        console.error(`bench-probe: ${spec.name} ${c.name} run ${r + 1}/${RUNS}`);
        const run = runOnce(c.cmd, c.argv, baseEnv);
        results[i]!.push(run);
        console.error(`bench-probe:   wall ${run.wall.toFixed(2)} s, CPU ${run.cpu.toFixed(2)} s, load ${run.load.toFixed(2)} s, forward ${run.forward.toFixed(2)} s, peak RSS ${run.rssMiB.toFixed(0)} MiB`);
      });
    }
    const base = median(results[0]!.map((x) => x.wall));
    contenders.forEach((c, i) => {
      const rs = results[i]!;
      const part = (v: number) => (Number.isNaN(v) ? '-' : v);
      table.push([spec.name, c.name, median(rs.map((x) => x.wall)), median(rs.map((x) => x.cpu)), part(median(rs.map((x) => x.load))), part(median(rs.map((x) => x.forward))),
        Math.max(...rs.map((x) => x.rssMiB)).toFixed(0), `${(base / median(rs.map((x) => x.wall))).toFixed(2)}x`]);
    });
    const cmp = compare(readF32(join(mdir, 'engine.f32')), readF32(join(mdir, 'torch.f32')), spec.vocab);
    notes.push(`${spec.name}: ${PROBES} probes, ${tokens} tokens, F32 weights ${f32MiB.toFixed(0)} MiB (RSS budget ${(f32MiB + 300).toFixed(0)} MiB); ` +
      `engine vs torch logits: max |diff| / max |logit| = ${cmp.rel.toExponential(2)}, same top-1 in ${cmp.top1}/${cmp.rows} probes`);
  }
} finally {
  if (args.keep) console.error(`bench-probe: kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}

printTable(`Probing ${PROBES} probes, median of ${RUNS} whole-process runs; ${os.cpus()[0]?.model ?? 'unknown CPU'}, ` +
  `${os.availableParallelism()} CPUs; Node ${process.version}`,
['model', 'contender', 'wall s', 'CPU s', 'load s', 'forward s', 'peak RSS MiB', 'vs torch'], table);
console.log('');
for (const n of notes) console.log(`- ${n}`);
