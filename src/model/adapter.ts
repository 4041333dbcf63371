// Owns PEFT LoRA adapters: reading `adapter_config.json` + `adapter_model.safetensors`, binding each
// lora_A/lora_B pair to the base tensor it changes, and ΔW = B·A·scale (scale = alpha/r, or alpha/√r with
// use_rslora; transposed for fan_in_fan_out layers such as GPT-2's Conv1D and for embeddings). What the
// diff report, `git tensor probe --adapter` (a TensorSource that adds ΔW at read time) and `git tensor
// fold` share. Anything else PEFT can save (DoRA, other peft types, trained biases) is refused by name,
// never ignored: an adapter applied in part would give a model that exists nowhere. docs/adapters.md.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { matmul, toF32 } from '../kernels/index.js';
import { ExitCode, GitTensorError } from '../errors/index.js';
import { fileTensorSource } from './source.js';
import type { TensorInfo, TensorSource } from './types.js';

/** The error of an adapter this module cannot read or apply: names the adapter file and the tensor. */
export class AdapterError extends GitTensorError {
  constructor(file: string, message: string, opts: { tensor?: string; hint?: string } = {}) {
    super('E_ADAPTER', `${file}: ${message}`, { exitCode: ExitCode.badInput, data: { file, ...(opts.tensor ? { tensor: opts.tensor } : {}) }, hint: opts.hint });
  }
}

export interface AdapterConfig {
  r: number;
  alpha: number;
  scale: number;
  fanInFanOut: boolean;
  rslora: boolean;
  targetModules: string[] | string | null;
  /** base_model_name_or_path, as written. */
  base: string | null;
}

/** One adapted module: its factors and the base tensor it changes. */
export interface AdapterModule {
  /** The module as PEFT names it, without `base_model.model.` (e.g. `bert.encoder.layer.0.attention.self.query`). */
  module: string;
  /** lora_A / lora_B tensor names in the adapter file. */
  a: TensorInfo;
  b: TensorInfo;
  rank: number;
  /** ΔW = B·A·scale, transposed when `transposed` (fan_in_fan_out layers, embeddings). */
  scale: number;
  transposed: boolean;
  embedding: boolean;
}

export interface Adapter {
  /** Names the adapter in messages (its safetensors path). */
  label: string;
  config: AdapterConfig;
  modules: AdapterModule[];
  tensors: TensorSource;
}

const PREFIX = 'base_model.model.';
/** `<module>.lora_A.weight`, `<module>.lora_A.<adapter name>.weight`, and the embedding variants. */
const FACTOR = /^(.*)\.lora_(A|B|embedding_A|embedding_B)(?:\.[^.]+)?(?:\.weight)?$/;

function num(v: unknown, key: string, file: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new AdapterError(file, `adapter_config.json: ${key} must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

/** Checks an adapter_config.json object; `file` names it in messages. */
export function parseAdapterConfig(json: unknown, file: string): AdapterConfig {
  if (typeof json !== 'object' || json === null) throw new AdapterError(file, 'adapter_config.json is not a JSON object');
  const c = json as Record<string, unknown>;
  const type = c.peft_type ?? 'LORA';
  if (type !== 'LORA') {
    throw new AdapterError(file, `peft_type ${JSON.stringify(type)} is not supported (only LORA)`, { hint: 'Merge it with PEFT (`merge_and_unload()`) and commit the merged checkpoint instead.' });
  }
  if (c.use_dora === true) throw new AdapterError(file, 'DoRA adapters (use_dora) are not supported: their magnitude vector rescales W, which ΔW = B·A does not describe', { hint: 'Merge it with PEFT (`merge_and_unload()`) and commit the merged checkpoint instead.' });
  if (c.bias !== undefined && c.bias !== 'none') throw new AdapterError(file, `adapter_config.json bias = ${JSON.stringify(c.bias)}: trained biases are not supported (only bias = "none")`);
  if (c.rank_pattern && Object.keys(c.rank_pattern as object).length) throw new AdapterError(file, 'rank_pattern (per-module ranks) is not supported');
  if (c.alpha_pattern && Object.keys(c.alpha_pattern as object).length) throw new AdapterError(file, 'alpha_pattern (per-module alphas) is not supported');
  const r = num(c.r, 'r', file);
  const alpha = num(c.lora_alpha ?? r, 'lora_alpha', file);
  const rslora = c.use_rslora === true;
  const tm = c.target_modules;
  return {
    r, alpha, rslora,
    scale: rslora ? alpha / Math.sqrt(r) : alpha / r,
    fanInFanOut: c.fan_in_fan_out === true,
    targetModules: Array.isArray(tm) ? tm.map(String) : typeof tm === 'string' ? tm : null,
    base: typeof c.base_model_name_or_path === 'string' ? c.base_model_name_or_path : null,
  };
}

/**
 * Pairs the adapter's lora_A/lora_B tensors into modules. `file` names the adapter in messages. A tensor
 * that is not a LoRA factor (a trained bias, modules_to_save) is an error.
 */
export async function openAdapter(opts: { config: AdapterConfig; tensors: TensorSource; label: string }): Promise<Adapter> {
  const { config, label } = opts;
  const byModule = new Map<string, { a?: TensorInfo; b?: TensorInfo; embedding: boolean }>();
  for (const t of await opts.tensors.list()) {
    const m = FACTOR.exec(t.name);
    if (!m) throw new AdapterError(label, `tensor ${t.name} is not a LoRA factor (lora_A/lora_B): modules_to_save and trained biases are not supported`, { tensor: t.name });
    const module = m[1]!.startsWith(PREFIX) ? m[1]!.slice(PREFIX.length) : m[1]!;
    const entry = byModule.get(module) ?? { embedding: false };
    const which = m[2]!;
    entry.embedding ||= which.startsWith('embedding');
    if (which.endsWith('A')) entry.a = t;
    else entry.b = t;
    byModule.set(module, entry);
  }
  const modules: AdapterModule[] = [];
  for (const [module, e] of byModule) {
    if (!e.a || !e.b) throw new AdapterError(label, `module ${module} has lora_${e.a ? 'A' : 'B'} but no lora_${e.a ? 'B' : 'A'}`, { tensor: (e.a ?? e.b)!.name });
    for (const t of [e.a, e.b]) {
      if (t.shape.length !== 2) throw new AdapterError(label, `tensor ${t.name} has shape [${t.shape.join(',')}], expected a matrix`, { tensor: t.name });
      if (!['F32', 'F16', 'BF16', 'F64'].includes(t.dtype)) throw new AdapterError(label, `tensor ${t.name} has dtype ${t.dtype}, expected a float`, { tensor: t.name });
    }
    // lora_A is [r, in] and lora_B [out, r]; for embeddings PEFT stores A as [r, vocab] and B as [dim, r].
    const rank = e.a.shape[0]!;
    if (e.b.shape[1] !== rank) throw new AdapterError(label, `module ${module}: lora_A is [${e.a.shape.join(',')}] but lora_B is [${e.b.shape.join(',')}] (ranks differ)`, { tensor: e.b.name });
    modules.push({ module, a: e.a, b: e.b, rank, scale: config.scale, transposed: config.fanInFanOut || e.embedding, embedding: e.embedding });
  }
  if (!modules.length) throw new AdapterError(label, 'holds no LoRA factors (lora_A/lora_B tensors)');
  modules.sort((x, y) => (x.module < y.module ? -1 : x.module > y.module ? 1 : 0));
  return { label, config, modules, tensors: opts.tensors };
}

/**
 * The base tensor a module changes: `<module>.weight`, else the same name with the architecture prefix
 * dropped (`transformer.h.0...` in the adapter, `h.0...` in the base), else a base tensor that ends with
 * `.<module>.weight` (the base has a prefix the adapter lacks). Checks the shape.
 */
export function baseTensorOf(m: AdapterModule, base: Map<string, TensorInfo>, label: string): TensorInfo {
  const want = `${m.module}.weight`;
  let found = base.get(want) ?? base.get(want.slice(want.indexOf('.') + 1));
  if (!found) {
    const tails = [...base.keys()].filter((n) => n.endsWith(`.${want}`));
    if (tails.length === 1) found = base.get(tails[0]!);
  }
  if (!found) {
    throw new AdapterError(label, `module ${m.module} (tensor ${m.a.name}) is not in the base checkpoint (no tensor ${want})`, {
      tensor: m.a.name, hint: 'Check that the adapter was trained on this base (adapter_config.json base_model_name_or_path, or --base).',
    });
  }
  const out = m.b.shape[0]!, inn = m.a.shape[1]!;
  const expected = m.transposed ? [inn, out] : [out, inn];
  if (found.shape.length !== 2 || found.shape[0] !== expected[0] || found.shape[1] !== expected[1]) {
    throw new AdapterError(label, `module ${m.module}: B·A${m.transposed ? 'ᵀ' : ''} is [${expected.join(',')}] but base tensor ${found.name} is [${found.shape.join(',')}]`, { tensor: m.a.name });
  }
  if (!['F32', 'F16', 'BF16'].includes(found.dtype)) throw new AdapterError(label, `base tensor ${found.name} has dtype ${found.dtype}; adapters apply to F32, F16 and BF16 weights`, { tensor: found.name });
  return found;
}

async function factor(adapter: Adapter, t: TensorInfo): Promise<Float32Array> {
  return toF32(await adapter.tensors.read(t.name), t.dtype);
}

/**
 * ΔW of one module in the base tensor's layout, as f32 ([out, in], or [in, out] when transposed).
 * B·A is one call of the matmul kernel (y = x·Wᵀ): x = B, W = Aᵀ gives B·A; x = Aᵀ, W = B gives (B·A)ᵀ.
 */
export async function deltaOf(adapter: Adapter, m: AdapterModule): Promise<Float32Array> {
  const a = await factor(adapter, m.a), b = await factor(adapter, m.b);
  const r = m.rank, out = m.b.shape[0]!, inn = m.a.shape[1]!;
  const at = new Float32Array(inn * r);
  for (let k = 0; k < r; k++) for (let j = 0; j < inn; j++) at[j * r + k] = a[k * inn + j]!;
  const d = m.transposed
    ? await matmul({ x: at, w: b, rows: inn, inDim: r, outDim: out })
    : await matmul({ x: b, w: at, rows: out, inDim: r, outDim: inn });
  if (m.scale !== 1) for (let i = 0; i < d.length; i++) d[i]! *= m.scale;
  return d;
}

/**
 * ‖ΔW‖_F without forming ΔW: ‖B·A‖_F² = trace((BᵀB)(AAᵀ)), two r×r Gram matrices (float64).
 */
export async function deltaNorm(adapter: Adapter, m: AdapterModule): Promise<number> {
  const a = await factor(adapter, m.a), b = await factor(adapter, m.b);
  const r = m.rank, out = m.b.shape[0]!, inn = m.a.shape[1]!;
  const btb = new Float64Array(r * r), aat = new Float64Array(r * r);
  for (let i = 0; i < out; i++) for (let p = 0; p < r; p++) for (let q = 0; q < r; q++) btb[p * r + q]! += b[i * r + p]! * b[i * r + q]!;
  for (let p = 0; p < r; p++) for (let q = 0; q < r; q++) {
    let s = 0;
    for (let j = 0; j < inn; j++) s += a[p * inn + j]! * a[q * inn + j]!;
    aat[p * r + q] = s;
  }
  let tr = 0;
  for (let p = 0; p < r; p++) for (let q = 0; q < r; q++) tr += btb[p * r + q]! * aat[q * r + p]!;
  return Math.abs(m.scale) * Math.sqrt(Math.max(0, tr));
}

/** Which base tensor each adapter module changes, checked against the base's list. */
export function bindAdapters(adapters: Adapter[], baseList: TensorInfo[]): Map<string, { adapter: Adapter; module: AdapterModule }[]> {
  const base = new Map(baseList.map((t) => [t.name, t]));
  const out = new Map<string, { adapter: Adapter; module: AdapterModule }[]>();
  for (const adapter of adapters) {
    for (const m of adapter.modules) {
      const t = baseTensorOf(m, base, adapter.label);
      out.set(t.name, [...(out.get(t.name) ?? []), { adapter, module: m }]);
    }
  }
  return out;
}

/**
 * The base's tensors with every adapter's ΔW added at read time (W + Σ ΔW, computed in f32 and
 * returned as f32 bytes: the engine computes in f32 anyway, so nothing is rounded twice). PEFT applies
 * several active adapters the same way: their outputs add.
 */
export async function adaptedTensorSource(base: TensorSource, adapters: Adapter[]): Promise<TensorSource> {
  const list = await base.list();
  const bound = bindAdapters(adapters, list);
  const infos = list.map((t) => (bound.has(t.name) ? { ...t, dtype: 'F32' } : t));
  const dtypes = new Map(list.map((t) => [t.name, t.dtype]));
  return {
    list: async () => infos,
    read: async (name) => {
      const raw = await base.read(name);
      const mods = bound.get(name);
      if (!mods) return raw;
      const w = await toF32(raw, dtypes.get(name)!);
      const sum = new Float32Array(w);
      for (const { adapter, module } of mods) {
        const d = await deltaOf(adapter, module);
        for (let i = 0; i < sum.length; i++) sum[i]! += d[i]!;
      }
      return new Uint8Array(sum.buffer, sum.byteOffset, sum.byteLength);
    },
  };
}

/** The adapter file of a path: a folder holding adapter_model.safetensors, or the file itself. */
export function adapterFilesOf(path: string): { weights: string; config: string } {
  const weights = existsSync(path) && statSync(path).isDirectory() ? join(path, 'adapter_model.safetensors') : path;
  return { weights, config: join(dirname(weights), 'adapter_config.json') };
}

/** Reads an adapter on disk: `path` is its folder or its adapter_model.safetensors (config beside it). */
export async function readAdapter(path: string): Promise<Adapter> {
  const { weights, config } = adapterFilesOf(path);
  if (!existsSync(weights)) throw new AdapterError(path, `no adapter here (expected ${weights})`, { hint: 'Give the folder PEFT saved (adapter_config.json + adapter_model.safetensors) or the .safetensors file.' });
  if (!existsSync(config)) throw new AdapterError(weights, `no adapter_config.json beside it (${config})`, { hint: 'PEFT writes adapter_config.json next to the weights; copy it there.' });
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(config, 'utf8'));
  } catch (err) {
    throw new AdapterError(config, `not JSON (${(err as Error).message})`);
  }
  return openAdapter({ config: parseAdapterConfig(json, config), tensors: await fileTensorSource(weights), label: weights });
}
