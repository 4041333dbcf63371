// Owns the choices `git tensor resolve` remembers for a file still in conflict, so a file can be settled
// in steps. They belong to one merge: they are tied to the file's index stages and forgotten as soon as
// those change (the merge was aborted, or redone). Also the merge guard's report for a file the guard refused,
// which `git tensor conflicts` shows again.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { git } from '../git/exec.js';
import type { UnmergedEntry } from '../git/tree.js';
import type { MergeRule, StrategyParams } from '../merge/strategy.js';
import { writeFileAtomic } from '../store/atomic.js';
import { storeDirOf } from './context.js';

export interface ResolveChoice {
  /** Glob over tensor names; absent: every tensor no explicit choice covers. */
  tensor?: string;
  params: StrategyParams;
}

interface SavedState {
  path: string;
  /** The file's index stages and the operation in progress: a redone merge is a different merge. */
  merge: string;
  choices: ResolveChoice[];
}

/** Identifies one merge of one file: its stage blobs, and when the operation that made them started. */
function mergeIdentity(entry: UnmergedEntry): string {
  const heads = ['MERGE_HEAD', 'CHERRY_PICK_HEAD', 'REVERT_HEAD', 'REBASE_HEAD'].map((name) => {
    const file = git(['rev-parse', '--git-path', name]);
    return existsSync(file) ? `${name}@${statSync(file).mtimeMs}` : '';
  });
  return JSON.stringify([entry.stages, heads.filter(Boolean)]);
}

function stateFile(commonDir: string, path: string): string {
  return join(storeDirOf(commonDir), 'resolve', createHash('sha256').update(path).digest('hex') + '.json');
}

export function loadChoices(commonDir: string, entry: UnmergedEntry): ResolveChoice[] {
  const file = stateFile(commonDir, entry.path);
  if (!existsSync(file)) return [];
  const saved = JSON.parse(readFileSync(file, 'utf8')) as SavedState;
  return saved.merge === mergeIdentity(entry) ? saved.choices : [];
}

export function saveChoices(commonDir: string, entry: UnmergedEntry, choices: ResolveChoice[]): void {
  const state: SavedState = { path: entry.path, merge: mergeIdentity(entry), choices };
  writeFileAtomic(stateFile(commonDir, entry.path), JSON.stringify(state, null, 2) + '\n');
}

export function clearChoices(commonDir: string, path: string): void {
  rmSync(stateFile(commonDir, path), { force: true });
}

/**
 * Choices as merge rules, after the configured ones: choices without --tensor first (they cover the rest),
 * then the explicit ones, each group in the order given, so a later blanket choice never undoes an
 * earlier choice for named tensors.
 */
export function choiceRules(choices: ResolveChoice[]): MergeRule[] {
  const ordered = [...choices.filter((c) => c.tensor === undefined), ...choices.filter((c) => c.tensor !== undefined)];
  return ordered.map((c) => ({
    tensor: c.tensor ?? '*',
    params: c.params,
    source: `git tensor resolve${c.tensor === undefined ? '' : ` --tensor ${c.tensor}`}`,
  }));
}

/** The report of a merge the guard refused, tied to the file's stage blobs (base, ours, theirs). */
export interface GuardRecord {
  path: string;
  stages: (string | null)[];
  text: string[];
  verdict: unknown;
}

function guardFile(commonDir: string, path: string): string {
  return join(storeDirOf(commonDir), 'resolve', 'guard-' + createHash('sha256').update(path).digest('hex') + '.json');
}

/**
 * Kept by the merge driver, which runs before git writes MERGE_HEAD and the index stages: the record is
 * tied to the stage blobs alone, so a later merge of other content never shows it.
 */
export function saveGuardRecord(commonDir: string, record: GuardRecord): void {
  writeFileAtomic(guardFile(commonDir, record.path), JSON.stringify(record, null, 2) + '\n');
}

export function loadGuardRecord(commonDir: string, entry: UnmergedEntry): GuardRecord | null {
  const file = guardFile(commonDir, entry.path);
  if (!existsSync(file)) return null;
  const saved = JSON.parse(readFileSync(file, 'utf8')) as GuardRecord;
  const stages = [entry.stages[1] ?? null, entry.stages[2] ?? null, entry.stages[3] ?? null];
  return JSON.stringify(saved.stages) === JSON.stringify(stages) ? saved : null;
}

export function clearGuardRecord(commonDir: string, path: string): void {
  rmSync(guardFile(commonDir, path), { force: true });
}
