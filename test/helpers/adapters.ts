// Owns PEFT LoRA adapters for the adapter tests, and the independent reference they are checked against:
// ΔW = B·A·scale computed with plain float64 loops (no kernel, no shared code with src/model/adapter.ts),
// then added to the base and rounded once to the base's dtype (roundTo: round to nearest even).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serializeSafetensors, type TensorInput } from '../../src/format/safetensors.js';
import { gaussian } from './diff-models.js';
import { encode, roundTo, type FloatDType } from './merge-models.js';

export interface LoraModule {
  /** PEFT module name without base_model.model. (e.g. bert.encoder.layer.0.attention.self.query). */
  module: string;
  out: number;
  in: number;
}

export interface MadeAdapter {
  dir: string;
  /** module -> A [r, in] and B [out, r] values as stored (rounded to `dtype`). */
  factors: Map<string, { a: Float64Array; b: Float64Array }>;
  scale: number;
}

/** Writes adapter_config.json + adapter_model.safetensors into `dir`, seeded. */
export function makeAdapter(dir: string, opts: {
  modules: LoraModule[]; r: number; alpha: number; seed: string; dtype?: FloatDType; fanInFanOut?: boolean; rslora?: boolean;
  base?: string; extraConfig?: Record<string, unknown>; magnitude?: number;
}): MadeAdapter {
  const dtype = opts.dtype ?? 'F32';
  const mag = opts.magnitude ?? 0.3;
  const factors = new Map<string, { a: Float64Array; b: Float64Array }>();
  const tensors: TensorInput[] = [];
  for (const m of opts.modules) {
    const a = gaussian(`${opts.seed}/${m.module}/A`, opts.r * m.in, mag).map((x) => roundTo(dtype, x));
    const b = gaussian(`${opts.seed}/${m.module}/B`, m.out * opts.r, mag).map((x) => roundTo(dtype, x));
    factors.set(m.module, { a, b });
    tensors.push({ name: `base_model.model.${m.module}.lora_A.weight`, dtype, shape: [opts.r, m.in], data: encode(dtype, a) });
    tensors.push({ name: `base_model.model.${m.module}.lora_B.weight`, dtype, shape: [m.out, opts.r], data: encode(dtype, b) });
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'adapter_model.safetensors'), serializeSafetensors(tensors, { format: 'pt' }));
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({
    peft_type: 'LORA', r: opts.r, lora_alpha: opts.alpha, target_modules: [...new Set(opts.modules.map((m) => m.module.split('.').pop()))],
    fan_in_fan_out: !!opts.fanInFanOut, use_rslora: !!opts.rslora, bias: 'none', base_model_name_or_path: opts.base ?? null, ...opts.extraConfig,
  }, null, 2));
  return { dir, factors, scale: opts.rslora ? opts.alpha / Math.sqrt(opts.r) : opts.alpha / opts.r };
}

/**
 * Reference ΔW of one module in float64: d[i][j] = scale · Σ_k B[i][k]·A[k][j] for an [out, in] weight,
 * or its transpose (d[j][i]) for a fan_in_fan_out [in, out] weight.
 */
export function referenceDelta(a: ArrayLike<number>, b: ArrayLike<number>, r: number, out: number, inn: number, scale: number, transposed: boolean): Float64Array {
  const d = new Float64Array(out * inn);
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < inn; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += b[i * r + k]! * a[k * inn + j]!;
      if (transposed) d[j * out + i] = scale * s;
      else d[i * inn + j] = scale * s;
    }
  }
  return d;
}
