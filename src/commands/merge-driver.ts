// Owns `git-tensor merge-driver %O %A %B %P`: git's merge driver for tracked checkpoints. Writes the
// merged pointer into %A and exits 0 when the merge is clean, 1 when conflicts are left for
// `git tensor conflicts` / `git tensor resolve`.

import { readFileSync, writeFileSync } from 'node:fs';
import { Printable } from './printable.js';
import { ExitCode, GitTensorError, MissingObjectsError } from '../errors/index.js';
import { looksLikePointer, parsePointer, Pointer } from '../format/pointer.js';
import { mergeCheckpoint, MergeOutcome } from '../merge/checkpoint-merge.js';
import { openRepo } from './context.js';
import { LazyFetcher } from '../remote/lazy-fetch.js';
import { envOverride, loadMergeRules } from './merge-rules.js';
import { movedAway, movedLines } from './merge-shards.js';

export interface MergeDriverOptions {
  base: string;
  ours: string;
  theirs: string;
  path: string;
}

function readPointer(file: string, path: string, side: string): Pointer | null {
  const bytes = readFileSync(file);
  if (bytes.length === 0 && side === 'base') return null; // no common ancestor: added on both sides
  if (!looksLikePointer(bytes)) {
    throw new GitTensorError('E_MERGE_NOT_POINTER', `${path}: ${side} version is not a git-tensor pointer (committed before the file was tracked?)`, {
      data: { file: path },
      hint: `Pick a side with \`git checkout --ours -- ${path}\` (or --theirs), then \`git add ${path}\`.`,
    });
  }
  return parsePointer(bytes.toString('utf8'), path);
}

export async function mergeDriver(opts: MergeDriverOptions): Promise<Printable> {
  const base = readPointer(opts.base, opts.path, 'base');
  const ours = readPointer(opts.ours, opts.path, 'ours')!;
  const theirs = readPointer(opts.theirs, opts.path, 'theirs')!;
  if (ours.kind !== 'safetensors' || theirs.kind !== 'safetensors' || (base && base.kind !== 'safetensors')) {
    // Opaque files merge only when one side left them alone; git already handles that case, so here both changed.
    return { data: { path: opts.path, clean: false }, text: [`git-tensor: ${opts.path}: both sides changed this opaque file; pick one with \`git checkout --ours|--theirs -- ${opts.path}\``], exitCode: ExitCode.failure, stream: 'stderr' };
  }
  const repo = openRepo();
  const { topLevel, store } = repo;
  const merge = async (): Promise<MergeOutcome> => {
    const writer = store.beginWrite();
    try {
      const outcome = await mergeCheckpoint(store, writer, {
        path: opts.path,
        base: base as Extract<Pointer, { kind: 'safetensors' }> | null,
        ours,
        theirs,
        rules: loadMergeRules(topLevel),
        override: envOverride(),
      });
      writer.commit();
      return outcome;
    } catch (err) {
      writer.abort();
      throw err;
    }
  };
  // A clone has the tensors of the versions it checked out; merging a branch it never checked out needs
  // that branch's tensors, fetched from the remote as a checkout would (mergeCheckpoint lists every
  // missing object before it writes anything).
  const lazy = new LazyFetcher(repo);
  let outcome: MergeOutcome;
  try {
    outcome = await merge();
  } catch (err) {
    if (!(err instanceof MissingObjectsError) || !(await lazy.fetch(err.ids, { file: opts.path }))) throw err;
    outcome = await merge();
  } finally {
    lazy.close();
  }
  // A conflict that is really a tensor moved to another shard of a sharded model says so (docs/merge.md).
  const moved = outcome.clean ? [] : movedAway({ ...opts, oursFile: opts.ours, theirsFile: opts.theirs, outcome, baseIds: new Map((base?.kind === 'safetensors' ? base.tensors : []).map((t) => [t.name, t.id])) });
  writeFileSync(opts.ours, outcome.pointer);
  return { data: outcome, text: [...summarize(opts.path, outcome), ...movedLines(opts.path, moved)], exitCode: outcome.clean ? ExitCode.ok : ExitCode.failure, stream: 'stderr' };
}

/** One paragraph per merged file: what was taken whole, merged exactly, resolved, or left in conflict. */
export function summarize(path: string, o: MergeOutcome): string[] {
  const count = (outcome: string) => o.tensors.filter((t) => t.outcome === outcome).length;
  const whole = count('ours') + count('theirs') + count('base');
  const lines = [`git-tensor: merged ${path}: ${whole} tensor(s) taken whole, ${count('union')} merged exactly by disjoint union` +
    (count('dropped') ? `, ${count('dropped')} removed` : '')];
  for (const t of o.tensors.filter((x) => x.outcome === 'resolved')) {
    lines.push(`  ${t.name}: ${t.counts!.conflict} conflicting element(s) resolved by ${t.strategy}`);
  }
  const conflicts = o.tensors.filter((t) => t.outcome === 'conflict');
  for (const t of conflicts) lines.push(`  CONFLICT ${t.name}: ${t.reason}`);
  for (const m of o.metadataConflicts) lines.push(`  CONFLICT __metadata__ key ${JSON.stringify(m.key)}: ours ${JSON.stringify(m.ours ?? null)}, theirs ${JSON.stringify(m.theirs ?? null)}`);
  if (!o.clean) {
    lines.push(`hint: inspect with \`git tensor conflicts\`, then \`git tensor resolve ${path} --strategy <name>\` (or \`git merge --abort\`).`);
  }
  return lines;
}
