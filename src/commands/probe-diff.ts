// Owns adding the behaviour section to `git tensor diff --probes`: the diff's two sides, read as
// `git diff` reads them (commands/diff.ts resolveSides), are probed and compared after the weight table.

import { Printable } from './printable.js';
import { join } from 'node:path';
import { renderDirections, topDirectionsOf, type Direction } from '../diff/directions.js';
import type { CheckpointSource, TensorEntry } from '../diff/analyze.js';
import { openRepo } from './context.js';
import { fileSource, pointerSource, tokenizerPathFor, vocabularyAt, vocabularyInWorktree } from './diff.js';
import { pointersAt } from './pointers.js';
import { GitTensorError, UsageError } from '../errors/index.js';
import { compareResults } from '../probe/compare.js';
import { renderBehaviour } from '../probe/report.js';
import { loadProbeSettings } from './probe-config.js';
import { blobVersion, diskVersion } from './probe-source.js';
import { gitRaw } from '../git/exec.js';
import { resolveSides } from './diff.js';
import { behaviourDiff, ProbeSession } from './probe.js';

export interface BehaviourSideOptions {
  revs: string[];
  cached: boolean;
  probes: string;
  paths: string[];
}

export async function diffWithBehaviour(weights: Printable, opts: BehaviourSideOptions): Promise<Printable> {
  const cwd = process.cwd();
  const isRev = (r: string) => r.includes('..') || gitRaw(['rev-parse', '--verify', '--quiet', `${r}^{commit}`], { cwd, okCodes: [1, 128] }).status === 0;
  const revs = opts.revs.filter(isRev);
  const paths = [...opts.revs.filter((r) => !isRev(r)), ...opts.paths];
  const [oldSide, newSide] = resolveSides(revs, opts.cached);
  if (oldSide.kind !== 'rev' || newSide.kind === 'index') {
    throw new UsageError('--probes compares two revisions, or a revision with the working tree', 'Use `git tensor diff <rev> <rev> --probes`.');
  }
  const path = paths.length === 1 ? toTopLevel(paths[0]!, cwd) : undefined;
  const b = await behaviourDiff({ old: oldSide.rev, new: newSide.kind === 'rev' ? newSide.rev : null, path, probes: opts.probes || undefined });
  const data = { ...(weights.data as object), behaviour: b.data };
  const text = [...weights.text, '', `${b.data.old} -> ${b.data.new}`, ...b.text];
  return { data, text };
}

function toTopLevel(path: string, cwd: string): string {
  const prefix = gitRaw(['rev-parse', '--show-prefix'], { cwd }).stdout.toString('utf8').trim();
  return (prefix + path).replace(/\/$/, '');
}

/**
 * The behaviour lines git's diff driver adds under a checkpoint's weight table when `.gittensor` names a
 * probes file. A failure becomes a line, never a failed `git diff`.
 */
export async function driverBehaviour(o: { path: string; oldHex?: string; newHex?: string; topLevel: string }): Promise<string[]> {
  if (!o.topLevel || !loadProbeSettings(o.topLevel).file) return [];
  const isBlob = (h?: string) => !!h && !/^0+$/.test(h) && h !== '.';
  if (!isBlob(o.oldHex)) return [];
  try {
    const s = new ProbeSession({});
    try {
      const a = await blobVersion(o.path, o.oldHex!, `${o.oldHex!.slice(0, 10)}:${o.path}`, s.topLevel);
      const b = isBlob(o.newHex) ? await blobVersion(o.path, o.newHex!, `${o.newHex!.slice(0, 10)}:${o.path}`, s.topLevel) : diskVersion(join(s.topLevel, o.path));
      const [ra, rb] = await s.results([a, b]);
      return ['', ...renderBehaviour(compareResults(ra!.results, rb!.results))];
    } finally {
      s.close();
    }
  } catch (err) {
    if (!(err instanceof GitTensorError)) throw err;
    return ['', `behaviour skipped: ${err.message}`, ...(err.hint ? [`hint: ${err.hint}`] : [])];
  }
}

/** Output matrices first: their rows are what the model says; input embeddings are the fallback. */
const OUTPUT_FIRST = [/(^|\.)(lm_head|embed_out)(\.|$)/, /./];

/**
 * The data-free line of `git tensor diff` without probes: for each checkpoint whose token view found a
 * changed token matrix (so a tokenizer is at hand), the top singular directions of that matrix's change
 * decoded into tokens (src/diff/directions.ts).
 */
export async function addDirections(weights: Printable, opts: { revs: string[]; cached: boolean }): Promise<Printable> {
  const files = ((weights.data as { files?: { path: string; tokens?: { tensor: string; vocabSize: number }[] }[] }).files ?? []).filter((f) => f.tokens?.length);
  if (!files.length) return weights;
  const cwd = process.cwd();
  const isRev = (r: string) => r.includes('..') || gitRaw(['rev-parse', '--verify', '--quiet', `${r}^{commit}`], { cwd, okCodes: [1, 128] }).status === 0;
  let sides;
  try {
    sides = resolveSides(opts.revs.filter(isRev), opts.cached);
  } catch (err) {
    if (err instanceof GitTensorError) return weights;
    throw err;
  }
  const [oldSide, newSide] = sides;
  if (oldSide.kind !== 'rev' || newSide.kind === 'index') return weights;
  const repo = openRepo();
  const lines: string[] = [];
  const found: { path: string; tensor: string; directions: Direction[] }[] = [];
  try {
    for (const f of files) {
      const view = OUTPUT_FIRST.map((re) => f.tokens!.find((t) => re.test(t.tensor))).find(Boolean)!;
      // Sources, not bytes: the matrix is streamed and only its most changed rows are held (docs/diff.md, "Memory").
      const open = async (side: typeof oldSide | typeof newSide): Promise<{ source: CheckpointSource; entry: TensorEntry } | null> => {
        if (side.kind === 'rev') {
          const p = (await pointersAt(side.rev, [f.path], repo.topLevel))[0]?.pointer;
          const t = p?.kind === 'safetensors' ? p.tensors.find((x) => x.name === view.tensor) : undefined;
          if (!p || p.kind !== 'safetensors' || !t || repo.store.missing([t.id]).length) return null;
          const source = pointerSource(p, repo.store, f.path);
          return { source, entry: source.tensors.find((x) => x.name === view.tensor)! };
        }
        const source = fileSource(join(repo.topLevel, f.path), f.path);
        const entry = source.tensors.find((x) => x.name === view.tensor);
        return entry ? { source, entry } : null;
      };
      const a = await open(oldSide), b = await open(newSide);
      if (!a || !b || a.entry.shape.join() !== b.entry.shape.join() || a.entry.shape.length !== 2) continue;
      const vocab = newSide.kind === 'rev'
        ? vocabularyAt(`${newSide.rev}:${tokenizerPathFor(f.path)}`, repo.store, repo.topLevel)
        : vocabularyInWorktree(repo.topLevel, f.path) ?? vocabularyAt(`${oldSide.rev}:${tokenizerPathFor(f.path)}`, repo.store, repo.topLevel);
      if (!vocab) continue;
      const dirs = await topDirectionsOf(a.source, a.entry, b.source, b.entry, vocab);
      if (!dirs.length) continue;
      found.push({ path: f.path, tensor: view.tensor, directions: dirs });
      lines.push(...renderDirections(`${f.path} ${view.tensor}`, dirs));
    }
  } finally {
    repo.store.close();
  }
  if (!lines.length) return weights;
  return { data: { ...(weights.data as object), directions: found }, text: [...weights.text, '', ...lines] };
}
