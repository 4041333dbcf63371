// Owns `git tensor fold <adapter>... [--base <checkpoint>] [--output <path>] [--strategy ...]`: writes the
// base checkpoint with the adapters' ΔW = B·A·scale added (W + Σ ΔW by default) as a new version of the
// checkpoint, ready to `git add`. Where several adapters change the same tensor, their ΔW are combined with
// a merge strategy (task-arithmetic sum by default; average, ties, dare). Also owns finding an
// adapter's base (shared with the diff report). docs/adapters.md.
//
// The result is written next to the output path and renamed over it: a failed or killed fold leaves the
// old file. The header bytes are the base's own (dtypes and shapes do not change, so neither do the
// offsets), and tensors no adapter touches keep their exact bytes.

import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, fsyncSync, openSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { Printable } from './printable.js';
import { UsageError } from '../errors/index.js';
import { readHeaderAt } from '../format/safetensors.js';
import { gitRaw } from '../git/exec.js';
import { average, dare, fromF32, taskArithmetic, ties, toF32 } from '../kernels/index.js';
import { makeStrategy, paramsFromStrings, type Strategy } from '../merge/strategy.js';
import { type Adapter, AdapterError, adapterFilesOf, bindAdapters, deltaOf, readAdapter } from '../model/adapter.js';
import { fsyncDir, tempPathFor } from '../store/atomic.js';
import { RULES_FILE } from './merge-rules.js';

/** Strategies that combine several ΔW of one tensor (the ones that take N task vectors). */
export const FOLD_STRATEGIES = ['task-arithmetic', 'average', 'ties', 'dare'] as const;

export interface FoldOptions {
  adapters: string[];
  base?: string;
  output?: string;
  /** Strategy settings as strings (`strategy`, `density`, `lambda`, `seed`), from flags. */
  settings?: Record<string, string>;
}

function gitConfigFile(file: string, key: string, cwd: string): string | undefined {
  const r = gitRaw(['config', '-f', file, '--get', key], { cwd, okCodes: [1] });
  return r.status === 0 ? r.stdout.toString('utf8').replace(/\n$/, '') : undefined;
}

function topLevelOf(cwd: string): string | null {
  const r = gitRaw(['rev-parse', '--show-toplevel'], { cwd, okCodes: [128] });
  return r.status === 0 ? r.stdout.toString('utf8').trim() : null;
}

/** `[adapter] base = <path>` in the repository's .gittensor (repository-relative), if set. */
export function adapterBaseSetting(topLevel: string): string | undefined {
  const file = join(topLevel, RULES_FILE);
  return existsSync(file) ? gitConfigFile(file, 'adapter.base', topLevel) : undefined;
}

/** `[adapter] strategy = ties density=0.5 ...` in .gittensor, as key/value strings. */
function adapterStrategySetting(topLevel: string | null): Record<string, string> {
  if (!topLevel || !existsSync(join(topLevel, RULES_FILE))) return {};
  const out: Record<string, string> = {};
  for (const key of ['strategy', 'density', 'lambda', 'seed']) {
    const v = gitConfigFile(join(topLevel, RULES_FILE), `adapter.${key}`, topLevel);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** A checkpoint path named by a setting: a .safetensors file, or a folder holding model.safetensors. */
function checkpointAt(p: string): string | null {
  if (!existsSync(p)) return null;
  if (statSync(p).isDirectory()) return existsSync(join(p, 'model.safetensors')) ? join(p, 'model.safetensors') : null;
  return p;
}

/**
 * The base checkpoint of an adapter on disk: adapter_config.json's base_model_name_or_path when it is a
 * path that exists (relative to the repository's top level, then to the adapter's folder), else
 * .gittensor's `[adapter] base`. null when neither names one.
 */
export function findBaseOnDisk(adapter: Adapter, topLevel: string | null): string | null {
  const named = adapter.config.base;
  if (named) {
    const tries = isAbsolute(named) ? [named] : [...(topLevel ? [join(topLevel, named)] : []), join(dirname(adapter.label), named)];
    for (const t of tries) {
      const found = checkpointAt(t);
      if (found) return found;
    }
  }
  const setting = topLevel ? adapterBaseSetting(topLevel) : undefined;
  return setting ? checkpointAt(join(topLevel!, setting)) : null;
}

/** SHA-256 over the adapters' config and weights, in order: what probe results with adapters are cached under. */
export function adapterContentKey(paths: string[]): string {
  const h = createHash('sha256');
  for (const p of paths) {
    const { weights, config } = adapterFilesOf(p);
    for (const f of [config, weights]) {
      if (!existsSync(f)) throw new AdapterError(p, `no ${f}`, { hint: 'Give the folder PEFT saved (adapter_config.json + adapter_model.safetensors).' });
      h.update(createHash('sha256').update(readFileSync(f)).digest('hex')).update('\n');
    }
  }
  return h.digest('hex').slice(0, 16);
}

function strategyOf(settings: Record<string, string>): Strategy {
  const s = makeStrategy({ name: 'task-arithmetic', ...paramsFromStrings(settings, 'git tensor fold') }, 'git tensor fold');
  if (!(FOLD_STRATEGIES as readonly string[]).includes(s.name)) {
    throw new UsageError(`git tensor fold: strategy ${s.name} cannot combine adapters (one of ${FOLD_STRATEGIES.join(', ')})`, 'See docs/adapters.md.');
  }
  return s;
}

/** W + the adapters' ΔW combined with the strategy, f32 in and out. */
async function combine(w: Float32Array, deltas: Float32Array[], s: Strategy): Promise<Float32Array> {
  // A strategy combines overlapping adapters; one adapter alone is added whole (ties/dare do not trim it).
  if (deltas.length === 1) {
    const lambda = s.name === 'task-arithmetic' ? s.lambda : 1;
    const out = new Float32Array(w.length);
    for (let i = 0; i < w.length; i++) out[i] = w[i]! + lambda * deltas[0]![i]!;
    return out;
  }
  const models = deltas.map((d) => {
    const t = new Float32Array(w.length);
    for (let i = 0; i < w.length; i++) t[i] = w[i]! + d[i]!;
    return t;
  });
  const bytes = (() => {
    switch (s.name) {
      case 'average': return average({ dtype: 'F32', models });
      case 'ties': return ties({ dtype: 'F32', base: w, models, density: s.density, lambda: s.lambda });
      case 'dare': return dare({ dtype: 'F32', base: w, models, density: s.density, seed: s.seed, lambda: s.lambda });
      default: return taskArithmetic({ dtype: 'F32', base: w, models, lambda: s.lambda });
    }
  })();
  const b = await bytes;
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

export async function fold(opts: FoldOptions): Promise<Printable> {
  if (!opts.adapters.length) throw new UsageError('git tensor fold needs at least one adapter', 'Usage: git tensor fold <adapter>... [--base <checkpoint>]');
  const topLevel = topLevelOf(process.cwd());
  const strategy = strategyOf({ ...adapterStrategySetting(topLevel), ...(opts.settings ?? {}) });
  const adapters: Adapter[] = [];
  for (const a of opts.adapters) adapters.push(await readAdapter(a));
  const baseFile = opts.base ? resolve(opts.base) : findBaseOnDisk(adapters[0]!, topLevel);
  if (!baseFile || !existsSync(baseFile)) {
    throw new AdapterError(adapters[0]!.label, opts.base ? `--base ${opts.base}: no such file` : `cannot find its base checkpoint (base_model_name_or_path ${JSON.stringify(adapters[0]!.config.base)} is not a path here)`, {
      hint: 'Pass --base <checkpoint>, or set `[adapter] base = <path>` in .gittensor (docs/adapters.md).',
    });
  }
  if (baseFile.endsWith('.json')) throw new UsageError(`git tensor fold: ${baseFile} is a sharded checkpoint; fold writes single-file checkpoints`, 'Fold into one file with --base <model.safetensors>.');
  const output = resolve(opts.output ?? baseFile);

  // The base's header, read once; its bytes are reused as they are.
  const fd = openSync(baseFile, 'r');
  let header: ReturnType<typeof readHeaderAt>;
  try {
    header = readHeaderAt((b, at) => readSync(fd, b, 0, b.length, at), statSync(baseFile).size, baseFile);
  } finally {
    closeSync(fd);
  }
  const bound = bindAdapters(adapters, header.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })));

  const tmp = tempPathFor(output);
  copyFileSync(baseFile, tmp);
  const rows: { tensor: string; adapters: number; relChange: number }[] = [];
  try {
    const out = openSync(tmp, 'r+');
    try {
      for (const t of header.tensors) {
        const mods = bound.get(t.name);
        if (!mods) continue;
        const raw = Buffer.alloc(t.end - t.begin);
        readSync(out, raw, 0, raw.length, header.dataStart + t.begin);
        const w = await toF32(raw, t.dtype);
        const deltas: Float32Array[] = [];
        for (const { adapter, module } of mods) deltas.push(await deltaOf(adapter, module));
        const folded = await combine(w, deltas, strategy);
        const bytes = await fromF32(folded, t.dtype);
        let off = 0;
        while (off < bytes.length) off += writeSync(out, bytes, off, bytes.length - off, header.dataStart + t.begin + off);
        let nd = 0, nw = 0;
        for (let i = 0; i < w.length; i++) {
          nd += (folded[i]! - w[i]!) ** 2;
          nw += w[i]! ** 2;
        }
        rows.push({ tensor: t.name, adapters: mods.length, relChange: nw > 0 ? Math.sqrt(nd / nw) : Math.sqrt(nd) });
      }
      fsyncSync(out);
    } finally {
      closeSync(out);
    }
    renameSync(tmp, output);
  } catch (err) {
    if (existsSync(tmp)) unlinkSync(tmp);
    throw err;
  }
  fsyncDir(dirname(output));

  const shown = (p: string) => relative(process.cwd(), p) || p;
  const overlapping = rows.filter((r) => r.adapters > 1).length;
  const text = [
    `folded ${adapters.length} adapter(s) into ${shown(baseFile)} -> ${shown(output)}: ${rows.length} tensor(s) changed` +
      (overlapping ? `, ${overlapping} changed by several adapters (combined with ${strategy.name})` : ''),
    ...rows.map((r) => `  ${r.tensor}  ||Δ||/||W|| ${r.relChange.toExponential(2)}${r.adapters > 1 ? `  (${r.adapters} adapters)` : ''}`),
    `next: git add ${shown(output)}`,
  ];
  return {
    data: {
      base: baseFile, output, strategy: strategy.name, adapters: adapters.map((a) => a.label),
      tensors: rows.map((r) => ({ name: r.tensor, adapters: r.adapters, rel_change: r.relChange })),
    },
    text,
  };
}
