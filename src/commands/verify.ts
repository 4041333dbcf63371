// Owns `git tensor verify [<rev>] [--against <rev>] [--staged] [--path <ckpt>]`: the merge guard's
// protected probes run on a version (a commit, or the index) against another (its first parent, or HEAD
// for the index), for CI, pre-push hooks and the `pre-merge-commit` hook `git tensor install` writes: a
// merge in which git took one side's file whole never reaches the merge driver, and this hook still
// checks it. Exit 1 on regression, with the report. docs/merge.md "Merge guard".

import { basename, posix } from 'node:path';
import { Printable } from './printable.js';
import { ExitCode, UsageError } from '../errors/index.js';
import { gitRaw } from '../git/exec.js';
import { trackedPaths } from '../git/tree.js';
import { openRepo } from './context.js';
import { cannotRun, openGuard, renderVerdict, type GuardVerdict } from './guard.js';
import { SHARD_INDEX } from './probe-source.js';

export interface VerifyOptions {
  /** The version to check (default HEAD). */
  rev?: string;
  /** The version it must not regress from (default: rev's first parent; HEAD for --staged). */
  against?: string;
  /** Check the index instead of a commit (what a commit being made will hold). */
  staged?: boolean;
  /** Only this checkpoint (default: every checkpoint that differs from `against`). */
  path?: string;
  /** Run by a hook: a model the engine cannot run is a warning, not a failure. */
  hook?: boolean;
}

function treeOf(rev: string, cwd: string): string | null {
  const r = gitRaw(['rev-parse', '--verify', '--quiet', `${rev}^{tree}`], { cwd, okCodes: [1, 128] });
  return r.status === 0 ? r.stdout.toString('utf8').trim() : null;
}

/** Checkpoints of a tree: tracked .safetensors files (PEFT adapters aside) and shard indexes, a sharded one once. */
function checkpointsOf(tree: string, cwd: string): Map<string, string> {
  const out = gitRaw(['ls-tree', '-r', '-z', '--full-tree', tree], { cwd }).stdout.toString('utf8');
  const files = new Map<string, string>();
  for (const rec of out.split('\0').filter(Boolean)) {
    const tab = rec.indexOf('\t');
    const [, type, oid] = rec.slice(0, tab).split(' ');
    if (type === 'blob') files.set(rec.slice(tab + 1), oid!);
  }
  const dirOf = (p: string) => posix.dirname(p);
  const sharded = new Set([...files.keys()].filter((p) => basename(p) === SHARD_INDEX).map(dirOf));
  const tracked = trackedPaths([...files.keys()].filter((p) => p.endsWith('.safetensors')), cwd);
  const picked = new Map<string, string>();
  for (const [p, oid] of files) {
    if (basename(p) === SHARD_INDEX || (tracked.has(p) && basename(p) !== 'adapter_model.safetensors' && !sharded.has(dirOf(p)))) picked.set(p, oid);
  }
  return picked;
}

export async function verify(opts: VerifyOptions): Promise<Printable> {
  const repo = openRepo();
  const cwd = repo.topLevel;
  if (opts.staged && opts.rev) throw new UsageError('give a revision or --staged, not both', 'Use `git tensor verify <rev>` or `git tensor verify --staged`.');
  const setup = openGuard(repo);
  if (setup.kind === 'none') {
    return { data: { held: true, guarded: false, checkpoints: [] }, text: opts.hook ? [] : ['no protected probes configured (.gittensor [probe] file): nothing to verify'] };
  }
  const guard = setup.guard;
  try {
    let tree: string;
    let label: string;
    let against = opts.against;
    if (opts.staged) {
      const w = gitRaw(['write-tree'], { cwd, okCodes: [128] });
      if (w.status !== 0) throw new UsageError('the index has unmerged files: nothing to verify yet', 'Resolve them first (`git tensor conflicts`).');
      tree = w.stdout.toString('utf8').trim();
      label = 'index';
      against ??= 'HEAD';
    } else {
      label = opts.rev ?? 'HEAD';
      const t = treeOf(label, cwd);
      if (!t) throw new UsageError(`unknown revision ${JSON.stringify(label)}`, 'Check the name with `git log --oneline`.');
      tree = t;
      against ??= `${label}^1`;
    }
    const base = treeOf(against, cwd);
    if (!base) {
      if (opts.against !== undefined) throw new UsageError(`unknown revision ${JSON.stringify(against)}`, 'Check the name with `git log --oneline`.');
      return { data: { held: true, guarded: true, checkpoints: [] }, text: [`verify: ${label} has no parent: nothing to compare with`] };
    }
    const mine = checkpointsOf(tree, cwd);
    const theirs = checkpointsOf(base, cwd);
    const paths = opts.path ? [opts.path.replace(/^\.\//, '')] : [...mine.keys()].filter((p) => theirs.has(p));
    if (opts.path && (!mine.has(paths[0]!) || !theirs.has(paths[0]!))) throw new UsageError(`${opts.path} is not a checkpoint of both ${label} and ${against}`, 'List them with `git tensor ls`.');
    const verdicts: GuardVerdict[] = [];
    const text: string[] = [];
    for (const path of paths) {
      const before = await guard.version({ treeish: base, path, label: `${against}:${path}` });
      const after = await guard.version({ treeish: tree, path, label: `${label}:${path}` });
      if (before.contentKey === after.contentKey) continue;
      let v: GuardVerdict;
      try {
        v = await guard.check(before, after, { path });
      } catch (err) {
        if (!opts.hook || !cannotRun(err)) throw err;
        text.push(`git-tensor: merge guard: cannot run the protected probes on ${path} (${err.message}); NOT verified`);
        continue;
      }
      verdicts.push(v);
      if (!v.held) text.push(...renderVerdict(v, { before: against, after: label }).map((l) => l.replace('merge guard: ', 'verify: ')));
    }
    const held = verdicts.every((v) => v.held);
    const probes = verdicts.reduce((n, v) => n + v.check.rows.length, 0);
    const worst = verdicts.reduce((m, v) => Math.max(m, v.check.worstDrop), -Infinity);
    if (held) {
      text.push(verdicts.length
        ? `verify: ${label}: held: ${probes} protected probe check(s) on ${verdicts.length} checkpoint(s) against ${against} (worst drop ${worst.toFixed(3)} nats)`
        : `verify: ${label}: no checkpoint differs from ${against}: nothing to verify`);
    } else if (opts.hook) {
      text.push('hint: this merge would lose what a protected probe checks; `git merge --abort` undoes it, or commit with --no-verify to accept the drop.');
    }
    return {
      data: { held, guarded: true, rev: label, against, checkpoints: verdicts },
      text,
      exitCode: held ? ExitCode.ok : ExitCode.failure,
      stream: opts.hook ? 'stderr' : 'stdout',
    };
  } finally {
    guard.close();
  }
}

/** git runs `pre-merge-commit` (no arguments) before it records a merge it made without conflicts. */
export async function preMergeCommitHook(): Promise<Printable> {
  return verify({ staged: true, hook: true });
}
