// Owns `git tensor resolve <path> [--tensor <glob>] --strategy <name> [params]`: finishes the merge of
// one unmerged checkpoint with a strategy, writes the merged file and stages it. Choices for part of the
// tensors (--tensor) are remembered until the file is fully resolved, so a file can be settled in steps.
// A clean result passes the merge guard first (guard.ts); `--keep-ours <glob>` takes tensors whole from
// ours, `--no-guard` accepts a regression knowingly, `--strategy auto` tries candidates (resolve-auto.ts).

import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Printable } from './printable.js';
import { ExitCode, GitTensorError, UsageError } from '../errors/index.js';
import { parsePointer, serializePointer } from '../format/pointer.js';
import { git } from '../git/exec.js';
import { readSmallObjects, unmergedEntries, type UnmergedEntry } from '../git/tree.js';
import { mergeCheckpoint, type MergeOutcome } from '../merge/checkpoint-merge.js';
import { globToRegExp, makeStrategy, paramsFromStrings, type MergeRule } from '../merge/strategy.js';
import { tempPathFor } from '../store/atomic.js';
import { restore } from '../store/checkpoint.js';
import { stagePointers, type StagePointers } from './conflicts.js';
import { openRepo, type RepoContext } from './context.js';
import { choiceRules, clearChoices, clearGuardRecord, loadChoices, saveChoices, type ResolveChoice } from './resolve-state.js';
import { guardHint, summarize } from './merge-driver.js';
import { loadMergeRules } from './merge-rules.js';
import { guardMerge, openGuard, renderVerdict, type GuardSetup } from './guard.js';

export interface ResolveOptions {
  path: string;
  /** Glob over tensor names this choice covers (default: all). */
  tensor?: string;
  /** Strategy settings as written on the command line: strategy, density, lambda, weights, seed, t. */
  settings: Record<string, string>;
  /** Globs of tensors taken whole from ours (what the guard's report names as responsible modules). */
  keepOurs?: string[];
  /** Accept a result the merge guard refuses. */
  noGuard?: boolean;
}

/** One unmerged checkpoint, ready to be merged again with more rules. */
export interface ResolveTarget {
  repo: RepoContext;
  path: string;
  entry: UnmergedEntry;
  sides: StagePointers;
  /** Ours' pointer text as staged (stage 2). */
  oursText: string;
}

export async function resolveTarget(repo: RepoContext, rawPath: string): Promise<ResolveTarget> {
  const path = rawPath.replace(/^\.\//, '');
  const entry = unmergedEntries().find((e) => e.path === path);
  if (!entry) throw new UsageError(`${path} is not an unmerged file`, 'List unmerged checkpoints with `git tensor conflicts`.');
  const sides = await stagePointers(entry);
  if (typeof sides === 'string') throw new GitTensorError('E_RESOLVE_UNSUPPORTED', `${path}: ${sides}`, { data: { file: path } });
  const oursText = (await readSmallObjects([entry.stages[2]!], repo.topLevel)).get(entry.stages[2]!)!.toString('utf8');
  return { repo, path, entry, sides, oursText };
}

/**
 * Merges the target with the configured rules, `choices` and `extra` rules, then takes the `keepOurs`
 * tensors whole from ours; the store keeps the result's objects only when it is clean.
 */
export async function mergeTarget(t: ResolveTarget, choices: ResolveChoice[], keepOurs: string[], extra: MergeRule[] = []): Promise<MergeOutcome> {
  const writer = t.repo.store.beginWrite();
  try {
    const outcome = keepFromOurs(t, await mergeCheckpoint(t.repo.store, writer, { path: t.path, ...t.sides, rules: [...loadMergeRules(t.repo.topLevel), ...choiceRules(choices), ...extra] }), keepOurs);
    if (outcome.clean) writer.commit();
    else writer.abort();
    return outcome;
  } catch (err) {
    writer.abort();
    throw err;
  }
}

/** The outcome with every tensor a `keep` glob matches taken from ours (same dtype and shape, so the header stays). */
function keepFromOurs(t: ResolveTarget, outcome: MergeOutcome, keep: string[]): MergeOutcome {
  if (!keep.length) return outcome;
  const res = keep.map((g) => globToRegExp(g, true));
  const merged = parsePointer(outcome.pointer, t.path);
  if (merged.kind !== 'safetensors') return outcome;
  const ours = new Map(t.sides.ours.tensors.map((x) => [x.name, x]));
  const kept = new Set<string>();
  const tensors = merged.tensors.map((m) => {
    if (!res.some((re) => re.test(m.name))) return m;
    const o = ours.get(m.name);
    if (!o || o.dtype !== m.dtype || o.shape.join() !== m.shape.join()) {
      throw new UsageError(`--keep-ours: ${m.name} is not in ours with the same dtype and shape`, `Narrow the glob, or take the whole file with \`git checkout --ours -- ${t.path}\`.`);
    }
    kept.add(m.name);
    return o;
  });
  for (const [i, g] of keep.entries()) if (![...kept].some((n) => res[i]!.test(n))) throw new UsageError(`--keep-ours ${JSON.stringify(g)} matches no tensor of ${t.path}`, 'See the names with `git tensor ls`.');
  const reports = outcome.tensors.map((r) => (kept.has(r.name) ? { name: r.name, outcome: 'ours' as const } : r));
  return {
    ...outcome,
    pointer: serializePointer({ ...merged, tensors }),
    tensors: reports,
    clean: reports.every((r) => r.outcome !== 'conflict') && outcome.metadataConflicts.length === 0,
  };
}

export async function resolve(opts: ResolveOptions): Promise<Printable> {
  if (opts.settings.strategy === 'auto') {
    const { resolveAuto } = await import('./resolve-auto.js');
    return resolveAuto(opts);
  }
  const repo = openRepo();
  const params = paramsFromStrings(opts.settings, 'git tensor resolve');
  const keepOurs = opts.keepOurs ?? [];
  if (params.name === undefined && !keepOurs.length && !opts.noGuard) {
    throw new UsageError('git tensor resolve needs --strategy <name> (or --keep-ours <glob>, --no-guard)', 'See `git tensor resolve --help` and docs/merge.md.');
  }
  makeStrategy(params, 'git tensor resolve'); // reject bad flags before touching anything
  const t = await resolveTarget(repo, opts.path);
  const { path, entry, sides } = t;
  const given: ResolveChoice[] = params.name === undefined ? [] : [{ tensor: opts.tensor, params }];
  const choices = [...loadChoices(repo.commonDir, entry), ...given];
  if (opts.tensor !== undefined) {
    const re = globToRegExp(opts.tensor, true);
    if (![...sides.ours.tensors, ...sides.theirs.tensors].some((x) => re.test(x.name))) {
      throw new UsageError(`--tensor ${JSON.stringify(opts.tensor)} matches no tensor of ${path}`, 'See the names with `git tensor conflicts`.');
    }
  }

  let outcome = await mergeTarget(t, choices, keepOurs);
  const text = summarize(path, outcome);
  if (!outcome.clean) {
    saveChoices(repo.commonDir, entry, choices);
    text.push(`${path} is still unmerged; the choices so far are kept for the next \`git tensor resolve ${path} ...\`.`);
    return { data: outcome, text, exitCode: ExitCode.failure };
  }
  const setup: GuardSetup = opts.noGuard ? { kind: 'none' } : openGuard(repo);
  let guard = null;
  try {
    const g = await guardMerge({ setup, path, treeish: 'HEAD', oursText: t.oursText, outcome, remerge: (extra) => mergeTarget(t, choices, keepOurs, extra) });
    outcome = g.outcome;
    guard = g.verdict;
    if (g.unguarded) text.push(g.unguarded);
    if (g.protectedToBase.length) text.push(`protect: conflicting elements of ${g.protectedToBase.length} tensor(s) set back to base: ${g.protectedToBase.join(', ')}`);
  } finally {
    if (setup.kind === 'guarded') setup.guard.close();
  }
  if (guard && !guard.held) {
    saveChoices(repo.commonDir, entry, choices);
    text.push(...renderVerdict(guard), `${path} is still unmerged.`, guardHint(path, guard));
    return { data: { ...outcome, clean: false, guard }, text, exitCode: ExitCode.failure };
  }
  if (guard) text.push(`merge guard: ${guard.check.rows.length} protected probe(s) held (worst drop ${guard.check.worstDrop.toFixed(3)} nats)`);
  if (opts.noGuard) text.push('merge guard: skipped (--no-guard): protected probes were not checked');
  await stageResult(t, outcome.pointer);
  text.push(`resolved ${path} and staged it; finish with \`git commit\` (or \`git merge --continue\`).`);
  return { data: { ...outcome, guard }, text };
}

/** Writes the merged file, stages it and forgets the file's resolve state. */
export async function stageResult(t: ResolveTarget, pointer: string): Promise<void> {
  await writeWorkingFile(t.repo, join(t.repo.topLevel, t.path), pointer, t.path);
  git(['add', '--', t.path], { cwd: t.repo.topLevel });
  clearChoices(t.repo.commonDir, t.path);
  clearGuardRecord(t.repo.commonDir, t.path);
}

/** Writes the checkpoint a pointer stands for, atomically, so a failure leaves the old file in place. */
async function writeWorkingFile(repo: RepoContext, target: string, pointerText: string, path: string): Promise<void> {
  const tmp = tempPathFor(target);
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    for await (const piece of restore(repo.store, parsePointer(pointerText, path), path)) {
      let off = 0;
      while (off < piece.length) off += writeSync(fd, piece, off, piece.length - off);
    }
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, target);
}
