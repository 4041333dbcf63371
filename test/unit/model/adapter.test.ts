// PEFT LoRA adapters (src/model/adapter.ts): ΔW = B·A·scale per module checked against the independent
// float64 loops of test/helpers/adapters.ts, ‖ΔW‖ from the r×r Gram matrices against ‖reference‖, the
// read-time TensorSource used by `probe --adapter`, base-name mapping, and the errors a user gets for
// adapters that cannot be applied. Also real adapters from ../shared (GPT-2 Conv1D with fan_in_fan_out,
// an OPT adapter in BF16), skipped when absent.

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../../../src/errors/index.js';
import { parseSafetensors, serializeSafetensors } from '../../../src/format/safetensors.js';
import { adaptedTensorSource, AdapterError, deltaNorm, deltaOf, readAdapter } from '../../../src/model/adapter.js';
import { fileTensorSource } from '../../../src/model/index.js';
import { makeAdapter, referenceDelta } from '../../helpers/adapters.js';
import { gaussian } from '../../helpers/diff-models.js';
import { decode, encode, type FloatDType } from '../../helpers/merge-models.js';
import { orSkipped, sharedDir } from '../../helpers/shared.js';

/**
 * The kernel sums r products in f32 (with FMA): its error is at most about r·2⁻²⁴ of Σ|B||A|; the
 * factors here are O(1) with r <= 16, so 1e-5 of the largest |ΔW| bounds it with room to spare.
 */
const DELTA_TOLERANCE = 1e-5;

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'gt-adapter-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>): void {
  expect(got.length).toBe(want.length);
  let max = 0, err = 0;
  for (let i = 0; i < want.length; i++) {
    max = Math.max(max, Math.abs(want[i]!));
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
  }
  expect(max).toBeGreaterThan(0);
  expect(err).toBeLessThanOrEqual(DELTA_TOLERANCE * max);
}

function norm(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

describe('ΔW = B·A·scale', () => {
  it('matches the float64 reference for [out, in] weights, with alpha/r and with rsLoRA alpha/√r', async () => {
    for (const rslora of [false, true]) {
      const dir = tmp();
      const made = makeAdapter(dir, { modules: [{ module: 'model.layers.0.self_attn.q_proj', out: 24, in: 40 }], r: 4, alpha: 8, seed: `s${rslora}`, rslora });
      const adapter = await readAdapter(dir);
      expect(adapter.config.scale).toBe(rslora ? 8 / 2 : 2);
      const m = adapter.modules[0]!;
      const { a, b } = made.factors.get(m.module)!;
      const ref = referenceDelta(a, b, 4, 24, 40, made.scale, false);
      expectClose(await deltaOf(adapter, m), ref);
      expect(Math.abs((await deltaNorm(adapter, m)) - norm(ref))).toBeLessThan(1e-9 * norm(ref));
    }
  });

  it('transposes for fan_in_fan_out layers (GPT-2 Conv1D) and reads BF16 factors', async () => {
    const dir = tmp();
    const made = makeAdapter(dir, { modules: [{ module: 'transformer.h.0.attn.c_attn', out: 96, in: 32 }], r: 8, alpha: 16, seed: 'conv', fanInFanOut: true, dtype: 'BF16' });
    const adapter = await readAdapter(join(dir, 'adapter_model.safetensors'));
    const m = adapter.modules[0]!;
    expect(m.transposed).toBe(true);
    const { a, b } = made.factors.get(m.module)!;
    const ref = referenceDelta(a, b, 8, 96, 32, 2, true);
    expectClose(await deltaOf(adapter, m), ref);
    expect(Math.abs((await deltaNorm(adapter, m)) - norm(ref))).toBeLessThan(1e-9 * norm(ref));
  });
});

describe('base + adapters at read time (probe --adapter)', () => {
  it('adds Σ ΔW to the adapted tensors (names with or without the architecture prefix) and leaves the rest as they are', async () => {
    const dir = tmp();
    const w = gaussian('w', 16 * 12, 0.5);
    const other = gaussian('o', 12, 0.5);
    // The base stores `layers.0...` while PEFT names the module `model.layers.0...`.
    writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors([
      { name: 'layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [16, 12], data: encode('F32', Float32Array.from(w)) },
      { name: 'norm.weight', dtype: 'F32', shape: [12], data: encode('F32', Float32Array.from(other)) },
    ]));
    const one = makeAdapter(join(dir, 'a1'), { modules: [{ module: 'model.layers.0.mlp.up_proj', out: 16, in: 12 }], r: 2, alpha: 4, seed: 'one' });
    const two = makeAdapter(join(dir, 'a2'), { modules: [{ module: 'model.layers.0.mlp.up_proj', out: 16, in: 12 }], r: 3, alpha: 3, seed: 'two' });
    const base = await fileTensorSource(join(dir, 'model.safetensors'));
    const src = await adaptedTensorSource(base, [await readAdapter(one.dir), await readAdapter(two.dir)]);
    const f32w = Float32Array.from(w);
    const d1 = referenceDelta(one.factors.values().next().value!.a, one.factors.values().next().value!.b, 2, 16, 12, 2, false);
    const d2 = referenceDelta(two.factors.values().next().value!.a, two.factors.values().next().value!.b, 3, 16, 12, 1, false);
    const got = new Float32Array((await src.read('layers.0.mlp.up_proj.weight')).slice().buffer);
    const wantDelta = d1.map((x, i) => x + d2[i]!);
    expectClose(got.map((x, i) => x - f32w[i]!), wantDelta);
    expect(Buffer.from(await src.read('norm.weight'))).toEqual(Buffer.from(await base.read('norm.weight')));
  });
});

describe('embeddings and prefixed bases', () => {
  it('lora_embedding_A/B give (B·A)ᵀ on a [vocab, dim] embedding of a base saved with an architecture prefix', async () => {
    const dir = tmp();
    const vocab = 10, dim = 6, r = 2;
    const a = gaussian('ea', r * vocab).map((x) => Math.fround(x));
    const b = gaussian('eb', dim * r).map((x) => Math.fround(x));
    mkdirSync(join(dir, 'ad'));
    writeFileSync(join(dir, 'ad', 'adapter_model.safetensors'), serializeSafetensors([
      { name: 'base_model.model.embeddings.word_embeddings.lora_embedding_A', dtype: 'F32', shape: [r, vocab], data: encode('F32', a) },
      { name: 'base_model.model.embeddings.word_embeddings.lora_embedding_B', dtype: 'F32', shape: [dim, r], data: encode('F32', b) },
    ]));
    writeFileSync(join(dir, 'ad', 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 4 }));
    writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors([
      { name: 'bert.embeddings.word_embeddings.weight', dtype: 'F32', shape: [vocab, dim], data: Buffer.alloc(vocab * dim * 4) },
    ]));
    const adapter = await readAdapter(join(dir, 'ad'));
    const src = await adaptedTensorSource(await fileTensorSource(join(dir, 'model.safetensors')), [adapter]);
    const got = new Float32Array((await src.read('bert.embeddings.word_embeddings.weight')).slice().buffer);
    expectClose(got, referenceDelta(a, b, r, dim, vocab, 2, true));
  });
});

describe('adapters that cannot be applied are refused by name', () => {
  async function refused(dir: string, base?: string): Promise<AdapterError> {
    const err = await (async () => {
      const adapter = await readAdapter(dir);
      if (base) await adaptedTensorSource(await fileTensorSource(base), [adapter]);
    })().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).exitCode).toBe(ExitCode.badInput);
    return err as AdapterError;
  }
  const mod = { module: 'enc.q', out: 8, in: 8 };

  it('DoRA, other PEFT types and trained biases', async () => {
    const d1 = tmp();
    makeAdapter(d1, { modules: [mod], r: 2, alpha: 2, seed: 'x', extraConfig: { use_dora: true } });
    expect((await refused(d1)).message).toMatch(/adapter_config\.json: DoRA/);
    const d2 = tmp();
    makeAdapter(d2, { modules: [mod], r: 2, alpha: 2, seed: 'x', extraConfig: { peft_type: 'IA3' } });
    expect((await refused(d2)).message).toMatch(/peft_type "IA3" is not supported/);
    const d3 = tmp();
    makeAdapter(d3, { modules: [mod], r: 2, alpha: 2, seed: 'x', extraConfig: { bias: 'lora_only' } });
    expect((await refused(d3)).message).toMatch(/trained biases/);
  });

  it('a module the base lacks, a shape mismatch, a lone factor, a tensor that is not a factor', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors([{ name: 'enc.q.weight', dtype: 'F32', shape: [8, 6], data: Buffer.alloc(8 * 6 * 4) }]));
    const missing = join(dir, 'missing');
    makeAdapter(missing, { modules: [{ module: 'enc.k', out: 8, in: 8 }], r: 2, alpha: 2, seed: 'x' });
    const e1 = await refused(missing, join(dir, 'model.safetensors'));
    expect(e1.message).toContain(join(missing, 'adapter_model.safetensors'));
    expect(e1.message).toContain('base_model.model.enc.k.lora_A.weight');
    const shape = join(dir, 'shape');
    makeAdapter(shape, { modules: [mod], r: 2, alpha: 2, seed: 'x' });
    expect((await refused(shape, join(dir, 'model.safetensors'))).message).toMatch(/module enc\.q: B·A is \[8,8\] but base tensor enc\.q\.weight is \[8,6\]/);
    const lone = join(dir, 'lone');
    makeAdapter(lone, { modules: [mod], r: 2, alpha: 2, seed: 'x' });
    const file = join(lone, 'adapter_model.safetensors');
    const h = parseSafetensors(readFileSync(file));
    const bytes = readFileSync(file);
    const start = 8 + Number(bytes.readBigUInt64LE(0));
    const a = h.tensors.find((t) => t.name.includes('lora_A'))!;
    writeFileSync(file, serializeSafetensors([{ name: a.name, dtype: 'F32', shape: a.shape, data: bytes.subarray(start + a.begin, start + a.end) }]));
    expect((await refused(lone)).message).toMatch(/module enc\.q has lora_A but no lora_B/);
    writeFileSync(file, serializeSafetensors([{ name: 'base_model.model.enc.q.modules_to_save.default.weight', dtype: 'F32', shape: [2], data: Buffer.alloc(8) }]));
    expect((await refused(lone)).message).toMatch(/is not a LoRA factor/);
  });
});

// Real adapters saved by PEFT (../shared/fixtures/real-safetensors/CATALOG.tsv). Their adapter_config.json
// was not kept, so the test writes one with the rank the shapes show and an arbitrary alpha.
const REAL: { file: string; fanInFanOut: boolean }[] = [
  { file: 'abrhaleyarefaine1997__gpt2-tigrinya-lora__4441abb6d609__adapter_model.safetensors', fanInFanOut: true },
  { file: 'guilhermmeabreu__lab_08__65a734adbfde__adapter_model.safetensors', fanInFanOut: false },
];

const REAL_FIXTURES = sharedDir('fixtures', 'real-safetensors');

describe.each(REAL)('real PEFT adapter $file', ({ file, fanInFanOut }) => {
  const path = join(REAL_FIXTURES.dir, file);
  it.skipIf(!!REAL_FIXTURES.skip)(orSkipped('gives ΔW and ‖ΔW‖ of its first modules as the float64 reference does', REAL_FIXTURES), async () => {
    const dir = tmp();
    copyFileSync(path, join(dir, 'adapter_model.safetensors'));
    const header = parseSafetensors(readFileSync(path));
    const r = header.tensors.find((t) => t.name.endsWith('lora_A.weight'))!.shape[0]!;
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 2 * r, fan_in_fan_out: fanInFanOut }));
    const adapter = await readAdapter(dir);
    expect(adapter.modules.length * 2).toBe(header.tensors.length);
    const bytes = readFileSync(path);
    const start = 8 + Number(bytes.readBigUInt64LE(0));
    const values = (name: string) => {
      const t = header.tensors.find((x) => x.name === name)!;
      return decode(t.dtype as FloatDType, bytes.subarray(start + t.begin, start + t.end));
    };
    for (const m of adapter.modules.slice(0, 2)) {
      const out = m.b.shape[0]!, inn = m.a.shape[1]!;
      const ref = referenceDelta(values(m.a.name), values(m.b.name), r, out, inn, 2, fanInFanOut);
      expectClose(await deltaOf(adapter, m), ref);
      expect(Math.abs((await deltaNorm(adapter, m)) - norm(ref))).toBeLessThan(1e-9 * norm(ref));
    }
  });
});
