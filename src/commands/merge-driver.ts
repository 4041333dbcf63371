// Owns `git-tensor merge-driver %O %A %B %P`: git's merge driver for tracked checkpoints. Writes the
// merged pointer into %A and exits 0 when the merge is clean, 1 when conflicts are left for
// `git tensor conflicts` / `git tensor resolve`. A clean result must pass the merge guard (guard.ts:
// the protected probes of `.gittensor`'s `[probe] file`) first; a refused one leaves ours in %A and exits 1.

import { readFileSync, writeFileSync } from 'node:fs';
import { Printable } from './printable.js';
import { ExitCode, GitTensorError, MissingObjectsError } from '../errors/index.js';
import { looksLikePointer, parsePointer, Pointer } from '../format/pointer.js';
import { mergeCheckpoint, MergeOutcome } from '../merge/checkpoint-merge.js';
import { openRepo } from './context.js';
import { LazyFetcher } from '../remote/lazy-fetch.js';
import { envOverride, loadMergeRules } from './merge-rules.js';
import { guardMerge, openGuard, renderVerdict, type GuardVerdict } from './guard.js';
import type { MergeRule } from '../merge/strategy.js';
import { clearGuardRecord, saveGuardRecord } from './resolve-state.js';

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
  // A report from an earlier attempt at this file (aborted, or merged with other settings) is stale now.
  clearGuardRecord(repo.commonDir, opts.path);
  const merge = async (extra: MergeRule[] = []): Promise<MergeOutcome> => {
    const writer = store.beginWrite();
    try {
      const outcome = await mergeCheckpoint(store, writer, {
        path: opts.path,
        base: base as Extract<Pointer, { kind: 'safetensors' }> | null,
        ours,
        theirs,
        rules: [...loadMergeRules(topLevel), ...extra],
        override: envOverride(),
        only: extra.length ? (t) => !extra.some((r) => r.tensor === t) : undefined,
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
  // The guard reads ours' model files (config.json, tokenizer.json, other shards) from HEAD: git runs the
  // driver with HEAD at ours in a merge, a rebase, a cherry-pick and a revert alike.
  const oursText = readFileSync(opts.ours, 'utf8');
  const setup = openGuard(repo);
  let guarded;
  try {
    guarded = await guardMerge({ setup, path: opts.path, treeish: 'HEAD', oursText, outcome, remerge: merge });
  } finally {
    if (setup.kind === 'guarded') setup.guard.close();
  }
  outcome = guarded.outcome;
  const text = summarize(opts.path, outcome);
  if (guarded.unguarded) text.push(`git-tensor: ${guarded.unguarded}`);
  if (guarded.protectedToBase.length) text.push(`git-tensor: protect: conflicting elements of ${guarded.protectedToBase.length} tensor(s) set back to base: ${guarded.protectedToBase.join(', ')}`);
  const verdict = guarded.verdict;
  if (verdict && !verdict.held) {
    // Refused: %A keeps ours, so a careless `git add` keeps what HEAD had; the record lets
    // `git tensor conflicts` show the report until the file is resolved.
    const report = renderVerdict(verdict);
    const stages = [base ? blobOfFile(setup, opts.base) : null, blobOfFile(setup, opts.ours), blobOfFile(setup, opts.theirs)];
    saveGuardRecord(repo.commonDir, { path: opts.path, stages, text: report, verdict });
    text.push(...report.map((l) => `git-tensor: ${l}`), guardHint(opts.path, verdict));
    return { data: { ...outcome, clean: false, guard: verdict }, text, exitCode: ExitCode.failure, stream: 'stderr' };
  }
  if (verdict) text.push(`git-tensor: merge guard: ${verdict.check.rows.length} protected probe(s) held (worst drop ${verdict.check.worstDrop.toFixed(3)} nats)`);
  writeFileSync(opts.ours, outcome.pointer);
  return { data: { ...outcome, guard: verdict }, text, exitCode: outcome.clean ? ExitCode.ok : ExitCode.failure, stream: 'stderr' };
}

function blobOfFile(setup: ReturnType<typeof openGuard>, file: string): string {
  return setup.kind === 'guarded' ? setup.guard.blobId(readFileSync(file, 'utf8')) : '';
}

/** What to do after the guard refused a merge. */
export function guardHint(path: string, v: GuardVerdict): string {
  const keep = v.responsible ? ` take the responsible modules from ours with \`git tensor resolve ${path} ${v.responsible.map((m) => `--keep-ours '${m}.*'`).join(' ')}\`,` : '';
  return `hint:${keep} accept the drop with \`git tensor resolve ${path} --no-guard\`, or undo the merge with \`git merge --abort\`; \`git tensor conflicts\` shows this report again.`;
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
