// Owns `git tensor resolve <path> [--tensor <glob>] --strategy <name> [params]`: finishes the merge of
// one unmerged checkpoint with a strategy, writes the merged file and stages it. Choices for part of the
// tensors (--tensor) are remembered until the file is fully resolved, so a file can be settled in steps.

import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Printable } from './printable.js';
import { ExitCode, GitTensorError, UsageError } from '../errors/index.js';
import { parsePointer } from '../format/pointer.js';
import { git } from '../git/exec.js';
import { unmergedEntries } from '../git/tree.js';
import { mergeCheckpoint } from '../merge/checkpoint-merge.js';
import { globToRegExp, makeStrategy, paramsFromStrings } from '../merge/strategy.js';
import { tempPathFor } from '../store/atomic.js';
import { restore } from '../store/checkpoint.js';
import { stagePointers } from './conflicts.js';
import { openRepo } from './context.js';
import { choiceRules, clearChoices, loadChoices, saveChoices } from './resolve-state.js';
import { summarize } from './merge-driver.js';
import { loadMergeRules } from './merge-rules.js';

export interface ResolveOptions {
  path: string;
  /** Glob over tensor names this choice covers (default: all). */
  tensor?: string;
  /** Strategy settings as written on the command line: strategy, density, lambda, weights, seed, t. */
  settings: Record<string, string>;
}

export async function resolve(opts: ResolveOptions): Promise<Printable> {
  const repo = openRepo();
  const path = opts.path.replace(/^\.\//, '');
  const params = paramsFromStrings(opts.settings, 'git tensor resolve');
  makeStrategy(params, 'git tensor resolve'); // reject bad flags before touching anything
  const entry = unmergedEntries().find((e) => e.path === path);
  if (!entry) throw new UsageError(`${path} is not an unmerged file`, 'List unmerged checkpoints with `git tensor conflicts`.');
  const sides = await stagePointers(entry);
  if (typeof sides === 'string') throw new GitTensorError('E_RESOLVE_UNSUPPORTED', `${path}: ${sides}`, { data: { file: path } });

  const choices = [...loadChoices(repo.commonDir, entry), { tensor: opts.tensor, params }];
  if (opts.tensor !== undefined) {
    const re = globToRegExp(opts.tensor, true);
    if (![...sides.ours.tensors, ...sides.theirs.tensors].some((t) => re.test(t.name))) {
      throw new UsageError(`--tensor ${JSON.stringify(opts.tensor)} matches no tensor of ${path}`, 'See the names with `git tensor conflicts`.');
    }
  }
  const chosen = choiceRules(choices);

  const writer = repo.store.beginWrite();
  let outcome;
  try {
    outcome = await mergeCheckpoint(repo.store, writer, { path, ...sides, rules: [...loadMergeRules(repo.topLevel), ...chosen] });
    if (outcome.clean) writer.commit();
    else writer.abort();
  } catch (err) {
    writer.abort();
    throw err;
  }
  const text = summarize(path, outcome);
  if (!outcome.clean) {
    saveChoices(repo.commonDir, entry, choices);
    text.push(`${path} is still unmerged; the choices so far are kept for the next \`git tensor resolve ${path} ...\`.`);
    return { data: outcome, text, exitCode: ExitCode.failure };
  }
  await writeWorkingFile(repo, join(repo.topLevel, path), outcome.pointer, path);
  git(['add', '--', path], { cwd: repo.topLevel });
  clearChoices(repo.commonDir, path);
  text.push(`resolved ${path} and staged it; finish with \`git commit\` (or \`git merge --continue\`).`);
  return { data: outcome, text };
}

/** Writes the checkpoint a pointer stands for, atomically, so a failure leaves the old file in place. */
async function writeWorkingFile(repo: ReturnType<typeof openRepo>, target: string, pointerText: string, path: string): Promise<void> {
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
