// Owns the `[probe]` settings: `.gittensor` (committed with the model, git-config syntax, read by git
// itself like the `[merge]` rules in merge-rules.ts) names the probes file and optionally an external
// runner command; git config `tensor-probe.file` / `tensor-probe.command` override them for one clone.
//
// A command committed in `.gittensor` is code that came with a clone, so it runs only once the user
// trusts it (`git config tensor-probe.trust true`), as git never runs hooks or drivers named by a
// repository's own files.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gitRaw } from '../git/exec.js';
import { ExitCode, GitTensorError } from '../errors/index.js';
import { RULES_FILE } from './merge-rules.js';

export interface ProbeSettings {
  /** Probes file, repository-relative. */
  file?: string;
  /** External runner command line (run with sh -c). */
  command?: string;
  /** Where the command was written, for messages. */
  commandSource?: string;
  /** The command may run: it comes from git config, or `.gittensor` is trusted. */
  trusted: boolean;
}

function getConfig(args: string[], key: string, cwd: string): string | undefined {
  const r = gitRaw(['config', ...args, '--get', key], { cwd, okCodes: [1] });
  return r.status === 0 ? r.stdout.toString('utf8').replace(/\n$/, '') : undefined;
}

export function loadProbeSettings(topLevel: string): ProbeSettings {
  const committed = join(topLevel, RULES_FILE);
  const has = topLevel && existsSync(committed);
  const fromFile = (key: string) => (has ? getConfig(['-f', committed], key, topLevel) : undefined);
  const localFile = getConfig([], 'tensor-probe.file', topLevel);
  const localCommand = getConfig([], 'tensor-probe.command', topLevel);
  const committedCommand = fromFile('probe.command');
  const trust = getConfig(['--type=bool'], 'tensor-probe.trust', topLevel) === 'true';
  return {
    file: localFile ?? fromFile('probe.file'),
    command: localCommand ?? committedCommand,
    commandSource: localCommand !== undefined ? 'git config tensor-probe.command' : committedCommand !== undefined ? `${RULES_FILE} [probe] command` : undefined,
    trusted: localCommand !== undefined || trust,
  };
}

/** The runner command to use, or undefined for the built-in engine; refuses an untrusted committed one. */
export function runnerCommand(s: ProbeSettings): string | undefined {
  if (s.command === undefined) return undefined;
  if (!s.trusted) {
    throw new GitTensorError('E_PROBE_UNTRUSTED', `${s.commandSource} names a command (${JSON.stringify(s.command)}) that this clone has not trusted`, {
      exitCode: ExitCode.failure,
      hint: 'Read the command, then allow it with `git config tensor-probe.trust true` (or set your own with `git config tensor-probe.command ...`).',
    });
  }
  return s.command;
}
