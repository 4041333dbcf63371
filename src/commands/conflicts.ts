// Owns `git tensor conflicts`: for every checkpoint git left unmerged, which tensors conflict and how
// much (elements changed by ours, by theirs, by both differently, with opposite signs), and the merge
// guard's report for a file it refused (resolve-state.ts keeps it).

import { Printable, table } from './printable.js';
import { looksLikePointer, parsePointer, Pointer } from '../format/pointer.js';
import { mergeCheckpoint, MergeOutcome } from '../merge/checkpoint-merge.js';
import { readPointerBlobs } from '../git/cat-file.js';
import { unmergedEntries, UnmergedEntry } from '../git/tree.js';
import { openRepo, RepoContext } from './context.js';
import { envOverride, loadMergeRules } from './merge-rules.js';
import { choiceRules, loadChoices, loadGuardRecord } from './resolve-state.js';
import { MergeRule, StrategyParams } from '../merge/strategy.js';

type SafetensorsPointer = Extract<Pointer, { kind: 'safetensors' }>;

export interface StagePointers {
  base: SafetensorsPointer | null;
  ours: SafetensorsPointer;
  theirs: SafetensorsPointer;
}

/** The three stage pointers of an unmerged checkpoint, or a reason it is not one git-tensor can merge. */
export async function stagePointers(entry: UnmergedEntry): Promise<StagePointers | string> {
  const blobs = await readPointerBlobs(Object.values(entry.stages));
  const read = (oid?: string): Pointer | null | string => {
    if (!oid) return null;
    const b = blobs.get(oid);
    if (!b || !looksLikePointer(b)) return 'not a git-tensor pointer';
    return parsePointer(b.toString('utf8'), entry.path);
  };
  const [base, ours, theirs] = [read(entry.stages[1]), read(entry.stages[2]), read(entry.stages[3])];
  if (ours === null || theirs === null) return 'deleted on one side (take a side with `git rm` or `git checkout --ours|--theirs`)';
  for (const p of [base, ours, theirs]) {
    if (typeof p === 'string') return p;
    if (p && p.kind !== 'safetensors') return 'opaque file: pick a side with `git checkout --ours|--theirs`';
  }
  return { base: base as SafetensorsPointer | null, ours: ours as SafetensorsPointer, theirs: theirs as SafetensorsPointer };
}

/** Runs the merge without keeping anything: the analysis `conflicts` shows and `resolve` starts from. */
export async function analyse(repo: RepoContext, path: string, sides: StagePointers, rules: MergeRule[], override: StrategyParams, only?: (t: string) => boolean): Promise<MergeOutcome> {
  const writer = repo.store.beginWrite();
  try {
    return await mergeCheckpoint(repo.store, writer, { path, ...sides, rules, override, only });
  } finally {
    writer.abort();
  }
}

export async function conflicts(_opts: object): Promise<Printable> {
  const repo = openRepo();
  const rules = loadMergeRules(repo.topLevel);
  const files: { path: string; problem?: string; tensors: object[]; metadata: object[]; guard?: unknown }[] = [];
  const text: string[] = [];
  for (const entry of unmergedEntries()) {
    const sides = await stagePointers(entry);
    if (typeof sides === 'string') {
      files.push({ path: entry.path, problem: sides, tensors: [], metadata: [] });
      text.push(`${entry.path}: ${sides}`);
      continue;
    }
    // What is still in conflict after the configured rules and the choices made so far with resolve.
    const outcome = await analyse(repo, entry.path, sides, [...rules, ...choiceRules(loadChoices(repo.commonDir, entry))], envOverride());
    const rows = outcome.tensors.filter((t) => t.outcome === 'conflict').map((t) => {
      const n = t.counts ? shapeSize(sides.ours.tensors.find((x) => x.name === t.name)!.shape) : 0;
      return {
        tensor: t.name,
        reason: t.reason,
        elements: n,
        changedOurs: t.counts?.changedA ?? null,
        changedTheirs: t.counts?.changedB ?? null,
        overlapping: t.counts ? t.counts.conflict + t.counts.same : null,
        conflicting: t.counts?.conflict ?? null,
        signConflicting: t.counts?.signConflict ?? null,
        conflictingPercent: t.counts && n ? (100 * t.counts.conflict) / n : null,
      };
    });
    const guard = loadGuardRecord(repo.commonDir, entry);
    files.push({ path: entry.path, tensors: rows, metadata: outcome.metadataConflicts, ...(guard ? { guard: guard.verdict } : {}) });
    text.push(`${entry.path}: ${rows.length} conflicting tensor(s)` + (outcome.metadataConflicts.length ? `, ${outcome.metadataConflicts.length} metadata key(s)` : '') +
      (guard ? ', refused by the merge guard' : ''));
    const fmt = (v: number | null) => (v === null ? '-' : String(v));
    if (rows.length) text.push(...table([
      ['  tensor', 'changed-ours', 'changed-theirs', 'overlapping', 'conflicting', 'sign-conflicting', '% conflicting'],
      ...rows.map((r) => ['  ' + r.tensor, fmt(r.changedOurs), fmt(r.changedTheirs), fmt(r.overlapping), fmt(r.conflicting), fmt(r.signConflicting),
        r.conflictingPercent === null ? r.reason ?? '' : r.conflictingPercent.toFixed(2) + '%']),
    ], [1, 2, 3, 4, 5]));
    for (const m of outcome.metadataConflicts) text.push(`  __metadata__ ${JSON.stringify(m.key)}: ours ${JSON.stringify(m.ours ?? null)}, theirs ${JSON.stringify(m.theirs ?? null)}`);
    if (guard) text.push(...guard.text.map((l) => '  ' + l));
  }
  if (!files.length) text.push('no unmerged checkpoints');
  else text.push('hint: `git tensor resolve <path> [--tensor <glob>] --strategy <name>` finishes a file; `git merge --abort` undoes the merge.');
  return { data: { files }, text, exitCode: files.length ? 1 : 0 };
}

function shapeSize(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
