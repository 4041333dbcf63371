// Owns `git tensor install` / `uninstall`: the git config that makes git drive git-tensor, and (in a
// repository, --local) the hooks of hooks.ts.

import { git, gitRaw } from '../git/exec.js';
import { HookStatus, installHooks, uninstallHooks } from './hooks.js';

export type ConfigScope = 'local' | 'global' | 'system';

/**
 * The settings git needs. Programs are named without a path so a config works on every machine where
 * git-tensor is on PATH (`npm link`, or the repository's bin/ folder).
 */
export const GIT_CONFIG: ReadonlyArray<[string, string]> = [
  ['filter.tensor.process', 'git-tensor filter-process'],
  ['filter.tensor.required', 'true'],
  ['merge.tensor.name', 'git-tensor model-aware merge'],
  ['merge.tensor.driver', 'git-tensor merge-driver %O %A %B %P'],
  ['diff.tensor.command', 'git-tensor diff-driver'],
  ['diff.tensor.textconv', 'git-tensor textconv'],
];

export interface InstallOptions {
  scope: ConfigScope;
  cwd?: string;
}

export interface InstallResult {
  scope: ConfigScope;
  settings: [string, string][];
  /** Hooks are a repository's own (git has no global hooks folder but core.hooksPath): --local only. */
  hooks: HookStatus[];
}

export async function install(opts: InstallOptions): Promise<InstallResult> {
  for (const [key, value] of GIT_CONFIG) git(['config', `--${opts.scope}`, key, value], { cwd: opts.cwd });
  const hooks = opts.scope === 'local' ? installHooks(opts.cwd) : [];
  return { scope: opts.scope, settings: [...GIT_CONFIG], hooks };
}

export async function uninstall(opts: InstallOptions): Promise<InstallResult> {
  const removed: [string, string][] = [];
  for (const section of ['filter.tensor', 'diff.tensor', 'merge.tensor']) {
    // Exit 128 (no such section) is the already-uninstalled case.
    const r = gitRaw(['config', `--${opts.scope}`, '--remove-section', section], { cwd: opts.cwd, okCodes: [128] });
    if (r.status === 0) removed.push([section, '']);
  }
  if (opts.scope === 'local') for (const path of uninstallHooks(opts.cwd)) removed.push(['hook', path]);
  return { scope: opts.scope, settings: removed, hooks: [] };
}
