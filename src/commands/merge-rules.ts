// Owns where merge rules come from, in increasing priority: the committed `.gittensor` file, git config
// sections `[tensor-merge "<selector>"]`, then GIT_TENSOR_MERGE for one command.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gitRaw } from '../git/exec.js';
import { makeStrategy, MergeRule, parseStrategyText, rulesFromConfigList, StrategyParams } from '../merge/strategy.js';

export const RULES_FILE = '.gittensor';

/** `key\nvalue` entries, in file order. */
function configList(args: string[], cwd?: string): string[] {
  const r = gitRaw(['config', ...args, '--null', '--list'], { cwd, okCodes: [1] });
  return r.status === 0 ? r.stdout.toString('utf8').split('\0').filter(Boolean) : [];
}

export function loadMergeRules(topLevel: string): MergeRule[] {
  const file = join(topLevel, RULES_FILE);
  const committed = existsSync(file) ? rulesFromConfigList(configList(['-f', file]), 'merge', RULES_FILE) : [];
  const local = rulesFromConfigList(configList([], topLevel), 'tensor-merge', 'git config');
  return [...committed, ...local];
}

/** GIT_TENSOR_MERGE="ties density=0.2" applies to every tensor of the command it is set for. */
export function envOverride(): StrategyParams {
  const text = process.env.GIT_TENSOR_MERGE;
  if (!text) return {};
  const params = parseStrategyText(text, 'GIT_TENSOR_MERGE');
  makeStrategy(params, 'GIT_TENSOR_MERGE'); // a bad value is blamed on where it was written
  return params;
}
