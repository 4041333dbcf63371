// Owns git hooks: which hooks git-tensor needs, the small scripts `git tensor install` writes for them,
// and `git tensor hook <name> [args...]`, the one entry point those scripts call.
//
// A hook script only names the hook and hands over git's arguments, so the logic lives (and is tested)
// in TypeScript and an upgrade of git-tensor never needs the hooks rewritten. A hook file that is not
// git-tensor's is never overwritten: install reports it with the line to add, since a hook git-tensor
// needs but cannot install is a guard that silently does not run.

import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { Printable } from './printable.js';
import { UsageError } from '../errors/index.js';
import { git, gitRaw } from '../git/exec.js';
import { writeFileAtomic } from '../store/atomic.js';

/** What a hook does when git runs it: git's arguments in, an optional report and exit code out. */
export type HookHandler = (args: string[]) => Promise<Printable | void>;

/**
 * The hooks git-tensor installs, each loaded only when git runs it. Every hook named here is written by
 * `git tensor install` and removed by `git tensor uninstall`.
 */
const HANDLERS: Record<string, () => Promise<HookHandler>> = {
  // Merges git made without the merge driver (one side's file taken whole) still pass the merge guard.
  'pre-merge-commit': async () => (await import('./verify.js')).preMergeCommitHook,
};

export function hookNames(): string[] {
  return Object.keys(HANDLERS).sort();
}

/** Marks a hook file as git-tensor's own, so install may replace it and uninstall may remove it. */
const MARKER = '# git-tensor hook: written by `git tensor install`, removed by `git tensor uninstall`';

export function hookScript(name: string): string {
  return [
    '#!/bin/sh',
    MARKER,
    'command -v git-tensor >/dev/null 2>&1 || {',
    `  echo >&2 "git-tensor: the ${name} hook of this repository needs git-tensor on PATH (npm link, or add its bin/ folder); or remove it with \\\`git tensor uninstall\\\`"`,
    '  exit 2',
    '}',
    `exec git-tensor hook ${name} "$@"`,
    '',
  ].join('\n');
}

/** The line a user adds to a hook of their own to run git-tensor's. */
export function hookCall(name: string): string {
  return `git-tensor hook ${name} "$@"`;
}

/** The folder git runs hooks from (core.hooksPath respected), or null outside a repository. */
export function hooksDir(cwd?: string): string | null {
  const inside = gitRaw(['rev-parse', '--is-inside-git-dir', '--is-inside-work-tree'], { cwd, okCodes: [128] });
  if (inside.status !== 0) return null;
  const dir = git(['rev-parse', '--git-path', 'hooks'], { cwd });
  return isAbsolute(dir) ? dir : join(cwd ?? process.cwd(), dir);
}

export type HookState = 'installed' | 'missing' | 'foreign' | 'foreign-calls-us';

export interface HookStatus {
  name: string;
  path: string;
  state: HookState;
}

function stateOf(path: string, name: string): HookState {
  if (!existsSync(path)) return 'missing';
  const text = readFileSync(path, 'utf8');
  if (text.includes(MARKER)) return 'installed';
  return text.includes(`git-tensor hook ${name}`) ? 'foreign-calls-us' : 'foreign';
}

export function hookStatus(cwd?: string, names = hookNames()): HookStatus[] {
  const dir = hooksDir(cwd);
  if (!dir) return [];
  return names.map((name) => {
    const path = join(dir, name);
    return { name, path, state: stateOf(path, name) };
  });
}

/** True when git will run git-tensor's `name` hook in the repository at cwd. */
export function hookActive(name: string, cwd?: string): boolean {
  const s = hookStatus(cwd, [name])[0];
  return !!s && (s.state === 'installed' || s.state === 'foreign-calls-us');
}

/**
 * Writes git-tensor's hook scripts into the repository at cwd. Hooks that are someone else's are left
 * alone and returned as `foreign`, for the caller to report with the line to add.
 */
export function installHooks(cwd?: string, names = hookNames()): HookStatus[] {
  const dir = hooksDir(cwd);
  if (!dir) return [];
  mkdirSync(dir, { recursive: true });
  return names.map((name) => {
    const path = join(dir, name);
    const state = stateOf(path, name);
    if (state === 'foreign' || state === 'foreign-calls-us') return { name, path, state };
    writeFileAtomic(path, hookScript(name));
    chmodSync(path, 0o755);
    return { name, path, state: 'installed' as const };
  });
}

/** Removes git-tensor's own hook scripts; returns the paths removed. */
export function uninstallHooks(cwd?: string, names = hookNames()): string[] {
  const removed: string[] = [];
  for (const s of hookStatus(cwd, names)) {
    if (s.state !== 'installed') continue;
    rmSync(s.path, { force: true });
    removed.push(s.path);
  }
  return removed;
}

/** `git tensor hook <name> [args...]`: what git runs through the scripts above. */
export async function runHook(name: string, args: string[]): Promise<Printable | void> {
  const load = HANDLERS[name];
  if (!load) throw new UsageError(`unknown hook ${JSON.stringify(name)}`, `git-tensor runs these hooks: ${hookNames().join(', ') || '(none)'}.`);
  return (await load())(args);
}
