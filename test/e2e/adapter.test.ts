// PEFT LoRA adapters next to their base in a repository, as a user meets them: `git diff` explains an
// adapter as ΔW = B·A·alpha/r per module against the committed base; `git tensor probe --adapter` runs
// base + adapter and answers as the folded checkpoint does; `git tensor fold` writes base + ΔW (and
// several adapters' sum) equal to the independent float64 reference of test/helpers/adapters.ts, with the
// base's header bytes, and the result round-trips through git add / checkout.
// Base: the bert-tiny reference model (test/fixtures/models); the adapters are generated here.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSafetensors } from '../../src/format/safetensors.js';
import { makeAdapter, type MadeAdapter, referenceDelta } from '../helpers/adapters.js';
import { decode } from '../helpers/merge-models.js';
import { makeRepo, PROJECT_ROOT, type Repo } from '../helpers/repo.js';

const BERT_TINY = join(PROJECT_ROOT, 'test', 'fixtures', 'models', 'bert-tiny');
const FILES = ['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json'];
const R = 4, ALPHA = 8;
/** Modules of bert-tiny the adapters change (all [32, 32] weights). */
const MODULES = [0, 1].flatMap((l) => ['attention.self.query', 'attention.self.value', 'attention.output.dense'].map((m) => ({ module: `bert.encoder.layer.${l}.${m}`, out: 32, in: 32 })));

function tensorsOf(bytes: Buffer): Map<string, { dtype: string; shape: number[]; values: Float64Array; raw: Buffer }> {
  const h = parseSafetensors(bytes);
  const start = 8 + Number(bytes.readBigUInt64LE(0));
  return new Map(h.tensors.map((t) => {
    const raw = bytes.subarray(start + t.begin, start + t.end);
    return [t.name, { dtype: t.dtype, shape: [...t.shape], values: decode('F32', raw), raw }];
  }));
}

/** base + Σ adapters' reference ΔW, rounded once to f32: the expected folded tensors. */
function expectedFold(base: Buffer, adapters: MadeAdapter[]): Map<string, Float64Array> {
  const tensors = tensorsOf(base);
  const out = new Map<string, Float64Array>();
  for (const a of adapters) {
    for (const [module, f] of a.factors) {
      const name = `${module}.weight`;
      const acc = out.get(name) ?? Float64Array.from(tensors.get(name)!.values);
      const d = referenceDelta(f.a, f.b, R, 32, 32, a.scale, false);
      for (let i = 0; i < acc.length; i++) acc[i]! += d[i]!;
      out.set(name, acc);
    }
  }
  for (const v of out.values()) for (let i = 0; i < v.length; i++) v[i] = Math.fround(v[i]!);
  return out;
}

/**
 * The fold sums in f32 (the kernel's r-term dot products, then W + ΔW): besides the final rounding (half
 * an ulp), each element may differ from the float64 reference by a few f32 roundings of |W| + |ΔW|.
 */
function expectFolded(got: Float64Array, want: Float64Array): void {
  for (let i = 0; i < want.length; i++) {
    const tol = 4 * 2 ** -23 * (Math.abs(want[i]!) + 1);
    if (Math.abs(got[i]! - want[i]!) > tol) expect.fail(`element ${i}: ${got[i]} vs reference ${want[i]}`);
  }
}

function setup(): { repo: Repo; day1: MadeAdapter } {
  const repo = makeRepo();
  for (const f of FILES) repo.write(`model/${f}`, readFileSync(join(BERT_TINY, f)));
  repo.write('probes.jsonl', JSON.stringify({ id: 'capital', prompt: 'paris is the capital of [MASK].', targets: ['france', 'paris', 'london'] }) + '\n');
  repo.commit([...FILES.map((f) => `model/${f}`), 'probes.jsonl'], 'base');
  const day1 = makeAdapter(repo.path('adapters/day1'), { modules: MODULES, r: R, alpha: ALPHA, seed: 'day1', base: 'model' });
  repo.commit(['adapters/day1/adapter_model.safetensors', 'adapters/day1/adapter_config.json'], 'day 1 adapter');
  return { repo, day1 };
}

describe.skipIf(!existsSync(join(BERT_TINY, 'model.safetensors')))('PEFT adapters (bert-tiny base)', () => {
  it('git diff explains a committed adapter as ΔW = B·A·alpha/r per module against the base', () => {
    const { repo, day1 } = setup();
    const base = tensorsOf(repo.read('model/model.safetensors'));
    const rel = (module: string) => {
      const f = day1.factors.get(module)!;
      const d = referenceDelta(f.a, f.b, R, 32, 32, ALPHA / R, false);
      const n = (x: ArrayLike<number>) => Math.sqrt(Array.from(x).reduce((s, v) => s + v * v, 0));
      return { delta: n(d), rel: n(d) / n(base.get(`${module}.weight`)!.values) };
    };
    const text = repo.git(['diff', 'HEAD~1', 'HEAD']).stdout;
    expect(text).toContain('LoRA adapter: ΔW = B·A·alpha/r (r 4, alpha 8, scale 2), 6 module(s), against base model/model.safetensors');
    for (const m of MODULES) {
      const line = text.split('\n').find((l) => l.trim().startsWith(`${m.module} `))!;
      expect(line.trim().split(/\s+/)).toEqual([m.module, '4', rel(m.module).delta.toExponential(1), rel(m.module).rel.toExponential(1)]);
    }
    const json = JSON.parse(repo.gitTensor(['diff', 'HEAD~1', 'HEAD', '--json']).stdout);
    const adapter = json.files.find((f: { path: string }) => f.path === 'adapters/day1/adapter_model.safetensors').adapter;
    for (const m of adapter.modules) {
      expect(Math.abs(m.rel_change - rel(m.module).rel)).toBeLessThan(1e-6 * rel(m.module).rel);
      expect(m.base_tensor).toBe(`${m.module}.weight`);
    }

    // A new version in the working tree is explained too; without a base anywhere, rank and ||ΔW|| remain.
    makeAdapter(repo.path('adapters/day1'), { modules: MODULES.slice(0, 2), r: 2, alpha: 2, seed: 'day1b', base: 'no/such/model' });
    const worktree = repo.git(['diff']).stdout;
    expect(worktree).toContain('LoRA adapter: ΔW = B·A·alpha/r (r 2, alpha 2, scale 1), 2 module(s), base not found');
    expect(worktree).toMatch(/bert\.encoder\.layer\.0\.attention\.self\.query\s+2\s+\S+\s+-/);
    repo.write('.gittensor', '[adapter]\n\tbase = model/model.safetensors\n');
    expect(repo.git(['diff']).stdout).toContain('2 module(s), against base model/model.safetensors');
  });

  it('probe --adapter answers as the folded checkpoint does; fold equals the float64 reference and round-trips through git', () => {
    const { repo, day1 } = setup();
    const baseBytes = repo.read('model/model.safetensors');
    const probe = (args: string[]) => JSON.parse(repo.gitTensor(['probe', '--probes', 'probes.jsonl', '--json', ...args]).stdout).versions[0].probes[0].targets as { logprob: number }[];
    const plain = probe([]);
    const adapted = probe(['--adapter', 'adapters/day1']);
    expect(Math.max(...adapted.map((t, i) => Math.abs(t.logprob - plain[i]!.logprob)))).toBeGreaterThan(0.05);
    // The cache keeps base and base + adapter apart.
    expect(probe([])).toEqual(plain);

    const r = repo.gitTensor(['fold', 'adapters/day1']);
    expect(r.stdout).toContain('folded 1 adapter(s) into model/model.safetensors -> model/model.safetensors: 6 tensor(s) changed');
    const folded = repo.read('model/model.safetensors');
    // Same header bytes; untouched tensors keep their bytes; adapted ones equal the reference.
    const headerLength = 8 + Number(baseBytes.readBigUInt64LE(0));
    expect(folded.subarray(0, headerLength)).toEqual(baseBytes.subarray(0, headerLength));
    const want = expectedFold(baseBytes, [day1]);
    const before = tensorsOf(baseBytes), after = tensorsOf(folded);
    for (const [name, t] of after) {
      if (want.has(name)) expectFolded(t.values, want.get(name)!);
      else expect(t.raw.equals(before.get(name)!.raw)).toBe(true);
    }
    repo.commit(['model/model.safetensors'], 'fold day 1');
    const foldedProbe = probe(['HEAD']);
    adapted.forEach((t, i) => expect(Math.abs(t.logprob - foldedProbe[i]!.logprob)).toBeLessThan(1e-4));

    repo.git(['rm', '-q', '--cached', 'model/model.safetensors']);
    repo.git(['checkout', 'HEAD', '--', 'model/model.safetensors']);
    expect(repo.read('model/model.safetensors').equals(folded)).toBe(true);
  });

  it('fold of overlapping adapters sums their ΔW by default; unsupported adapters fail without touching the base', () => {
    const { repo, day1 } = setup();
    const baseBytes = repo.read('model/model.safetensors');
    const day2 = makeAdapter(repo.path('adapters/day2'), { modules: MODULES.slice(0, 3), r: R, alpha: ALPHA, seed: 'day2', base: 'model' });
    const out = repo.gitTensor(['fold', 'adapters/day1', 'adapters/day2', '--output', 'merged.safetensors']).stdout;
    expect(out).toContain('3 changed by several adapters (combined with task-arithmetic)');
    const want = expectedFold(baseBytes, [day1, day2]);
    for (const [name, t] of tensorsOf(repo.read('merged.safetensors'))) if (want.has(name)) expectFolded(t.values, want.get(name)!);
    expect(repo.gitTensor(['fold', 'adapters/day1', 'adapters/day2', '--output', 'ties.safetensors', '--strategy', 'ties', '--density', '0.5']).status).toBe(0);
    // The strategy .gittensor configures: average gives W + mean ΔW where the adapters overlap.
    repo.write('.gittensor', '[adapter]\n\tstrategy = average\n');
    expect(repo.gitTensor(['fold', 'adapters/day1', 'adapters/day2', '--output', 'avg.safetensors']).stdout).toContain('combined with average');
    const sum = expectedFold(baseBytes, [day1, day2]), only1 = expectedFold(baseBytes, [day1]);
    const base = tensorsOf(baseBytes);
    for (const [name, t] of tensorsOf(repo.read('avg.safetensors'))) {
      if (!sum.has(name)) continue;
      const overlap = MODULES.slice(0, 3).some((m) => `${m.module}.weight` === name);
      const w = base.get(name)!.values;
      expectFolded(t.values, overlap ? sum.get(name)!.map((x, i) => Math.fround(w[i]! + (x - w[i]!) / 2)) : only1.get(name)!);
    }

    makeAdapter(repo.path('adapters/dora'), { modules: MODULES, r: R, alpha: ALPHA, seed: 'd', base: 'model', extraConfig: { use_dora: true } });
    const bad = repo.gitTensor(['fold', 'adapters/dora'], { allowFail: true });
    expect(bad.status).toBe(3);
    expect(bad.stderr).toMatch(/adapters\/dora\/adapter_config\.json: DoRA adapters \(use_dora\) are not supported/);
    makeAdapter(repo.path('adapters/other'), { modules: [{ module: 'bert.encoder.layer.0.attention.self.key', out: 32, in: 16 }], r: R, alpha: ALPHA, seed: 'o', base: 'model' });
    const shape = repo.gitTensor(['fold', 'adapters/other'], { allowFail: true });
    expect(shape.status).toBe(3);
    expect(shape.stderr).toMatch(/adapters\/other\/adapter_model\.safetensors: module bert\.encoder\.layer\.0\.attention\.self\.key: B·A is \[32,16\] but base tensor .* is \[32,32\]/);
    expect(repo.read('model/model.safetensors').equals(baseBytes)).toBe(true);
  });
});

// The demo models (scripts/demo-models, made by scripts/make-demo-models.py): their manifest gives each
// probe's P(first target) on base + day-1 LoRA, from the script's float64 PyTorch reference of the folded
// weights: an independent check of ΔW = B·A·alpha/r, of the base found through base_model_name_or_path
// (`../../base`, relative to the adapter folder), and of probing through --adapter and after fold.
const DEMO = join(PROJECT_ROOT, 'scripts', 'demo-models');
const demoManifest = existsSync(join(DEMO, 'manifest.json')) ? JSON.parse(readFileSync(join(DEMO, 'manifest.json'), 'utf8')) : null;

describe.skipIf(!demoManifest?.probe_values?.['day1/lora'] || !existsSync(join(DEMO, 'day1', 'lora', 'adapter_config.json')))('PEFT adapters of the demo models', () => {
  it('probe --adapter and fold match the demo script\'s float64 reference for day 1', () => {
    const repo = makeRepo();
    for (const f of FILES) repo.write(`base/${f}`, readFileSync(join(DEMO, 'base', f)));
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) repo.write(`day1/lora/${f}`, readFileSync(join(DEMO, 'day1', 'lora', f)));
    // Only the fields probes need (the demo's file also carries merge-guard fields).
    const probes = readFileSync(join(DEMO, 'probes.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; prompt: string; targets: string[] });
    repo.write('probes.jsonl', probes.map(({ id, prompt, targets }) => JSON.stringify({ id, prompt, targets })).join('\n') + '\n');
    repo.commit([...FILES.map((f) => `base/${f}`), 'day1/lora/adapter_config.json', 'day1/lora/adapter_model.safetensors', 'probes.jsonl'], 'demo base and day 1');
    const want = demoManifest.probe_values['day1/lora'] as Record<string, number>;
    const check = (args: string[]) => {
      const got = JSON.parse(repo.gitTensor(['probe', '--probes', 'probes.jsonl', '--json', ...args]).stdout).versions[0].probes as { id: string; targets: { prob: number }[] }[];
      for (const p of got) expect(Math.abs(p.targets[0]!.prob - want[p.id]!), p.id).toBeLessThan(2e-5);
    };
    check(['--adapter', 'day1/lora']);
    expect(repo.git(['show', '--ext-diff', 'HEAD', '--', 'day1/lora/adapter_model.safetensors']).stdout).toMatch(/LoRA adapter: .* against base base\/model\.safetensors/);
    repo.gitTensor(['fold', 'day1/lora']);
    repo.commit(['base/model.safetensors'], 'fold day 1');
    check(['HEAD']);
  });
});

