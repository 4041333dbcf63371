// Owns the adapter section of a diff: when the changed file is a PEFT LoRA adapter (lora_A/lora_B pairs),
// explains it against its base as ΔW = B·A·scale per module (rank, ‖ΔW‖, ‖ΔW‖/‖W‖), reading
// adapter_config.json and the base checkpoint from the same side of the diff (a revision, the index or
// the working tree). The base is base_model_name_or_path when that is a path in the repository (relative
// to the top level, then to the adapter's folder; a folder means its model.safetensors), else `.gittensor`
// `[adapter] base = <path>`. Without a base, ranks and ‖ΔW‖ are still given. docs/adapters.md.

import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { CheckpointSource, TensorEntry } from '../diff/analyze.js';
import type { AdapterExplanation } from '../diff/types.js';
import { GitTensorError } from '../errors/index.js';
import { looksLikePointer, parsePointer } from '../format/pointer.js';
import { gitRaw } from '../git/exec.js';
import { baseTensorOf, deltaNorm, openAdapter, parseAdapterConfig } from '../model/adapter.js';
import type { TensorSource } from '../model/types.js';
import type { ObjectStore } from '../store/store.js';
import { fileSource, pointerSource, versionOfFile } from './diff.js';
import { adapterBaseSetting } from './fold.js';

/** A file holds LoRA factors: worth explaining as an adapter. */
export function looksLikeAdapter(tensors: readonly { name: string }[]): boolean {
  return tensors.some((t) => /\.lora_(A|B)(\.|$)/.test(t.name));
}

/** Where one side of a diff reads the adapter's config and its base: `rev`, the index (''), or the worktree (null). */
export interface AdapterSide {
  rev: string | null;
  store: ObjectStore;
  topLevel: string;
}

function blobAt(side: AdapterSide, rel: string): Buffer | null {
  const specs = side.rev === '' ? [`:${rel}`, `HEAD:${rel}`] : [`${side.rev}:${rel}`];
  for (const spec of specs) {
    const r = gitRaw(['cat-file', 'blob', spec], { cwd: side.topLevel, okCodes: [128] });
    if (r.status === 0) return r.stdout;
  }
  return null;
}

function textAt(side: AdapterSide, rel: string): string | null {
  if (side.rev === null) {
    const f = join(side.topLevel, rel);
    return existsSync(f) ? readFileSync(f, 'utf8') : null;
  }
  const b = blobAt(side, rel);
  return b && !looksLikePointer(b) ? b.toString('utf8') : null;
}

function checkpointAt(side: AdapterSide, rel: string): { source: CheckpointSource; label: string } | null {
  if (side.rev === null) {
    const f = join(side.topLevel, rel);
    if (!existsSync(f)) return null;
    const v = versionOfFile(f);
    const source = v.type === 'file' ? fileSource(f, rel) : v.pointer.kind === 'safetensors' ? pointerSource(v.pointer, side.store, rel) : null;
    return source && { source, label: rel };
  }
  const b = blobAt(side, rel);
  if (!b || !looksLikePointer(b)) return null;
  const p = parsePointer(b.toString('utf8'), rel);
  if (p.kind !== 'safetensors') return null;
  if (side.store.missing(p.tensors.map((t) => t.id)).length) return null;
  return { source: pointerSource(p, side.store, rel), label: side.rev ? `${side.rev}:${rel}` : rel };
}

export function asTensorSource(s: CheckpointSource): TensorSource {
  const byName = new Map<string, TensorEntry>(s.tensors.map((t) => [t.name, t]));
  return {
    list: async () => s.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
    read: async (name) => s.read(byName.get(name)!),
  };
}

async function frobenius(s: CheckpointSource, name: string): Promise<number> {
  const { toF32 } = await import('../kernels/index.js');
  const t = s.tensors.find((x) => x.name === name)!;
  const w = await toF32(await s.read(t), t.dtype);
  let sum = 0;
  for (let i = 0; i < w.length; i++) sum += w[i]! * w[i]!;
  return Math.sqrt(sum);
}

/** The adapter section for the adapter version `source` of file `path`, read on `side`. */
export async function explainAdapter(path: string, source: CheckpointSource, side: AdapterSide): Promise<AdapterExplanation> {
  const dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
  const configPath = dir ? `${dir}/adapter_config.json` : 'adapter_config.json';
  const text = textAt(side, configPath);
  if (text === null) return { r: 0, alpha: 0, scale: 0, base: null, modules: [], note: `no ${configPath} beside the adapter: rank and alpha unknown` };
  try {
    const config = parseAdapterConfig(JSON.parse(text), configPath);
    const adapter = await openAdapter({ config, tensors: asTensorSource(source), label: path });
    // The base: base_model_name_or_path when it is a path here, else .gittensor's [adapter] base.
    const candidates: string[] = [];
    if (config.base && !posix.isAbsolute(config.base)) {
      for (const p of [posix.normalize(config.base), posix.normalize(posix.join(dir, config.base))]) candidates.push(p.endsWith('.safetensors') ? p : posix.join(p, 'model.safetensors'), p);
    }
    const setting = adapterBaseSetting(side.topLevel);
    if (setting) candidates.push(setting.endsWith('.safetensors') ? setting : posix.join(setting, 'model.safetensors'));
    let base: { source: CheckpointSource; label: string } | null = null;
    for (const c of candidates) if (!base && c !== path && !c.startsWith('..')) base = checkpointAt(side, c);
    const baseInfos = new Map((base?.source.tensors ?? []).map((t) => [t.name, { name: t.name, dtype: t.dtype, shape: t.shape }]));
    const modules: AdapterExplanation['modules'] = [];
    let note: string | undefined;
    for (const m of adapter.modules) {
      const normDelta = await deltaNorm(adapter, m);
      let baseTensor: string | null = null, normBase: number | null = null;
      if (base) {
        try {
          baseTensor = baseTensorOf(m, baseInfos, path).name;
          normBase = await frobenius(base.source, baseTensor);
        } catch (err) {
          if (!(err instanceof GitTensorError)) throw err;
          note ??= err.message;
        }
      }
      modules.push({ module: m.module, baseTensor, rank: m.rank, normDelta, normBase, relChange: normBase ? normDelta / normBase : null });
    }
    modules.sort((a, b) => (b.relChange ?? -1) - (a.relChange ?? -1) || b.normDelta - a.normDelta);
    return { r: config.r, alpha: config.alpha, scale: config.scale, base: base?.label ?? null, modules, note };
  } catch (err) {
    if (!(err instanceof GitTensorError) && !(err instanceof SyntaxError)) throw err;
    return { r: 0, alpha: 0, scale: 0, base: null, modules: [], note: `not explained: ${err.message}` };
  }
}
