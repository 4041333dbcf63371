// Owns finding out which git command started this process (Linux /proc), for the filter process's one
// context-dependent choice: a smudge that only feeds git-tensor's own diff driver (see
// commands/filter-process.ts), and for the diff driver, which reads the revisions `git diff` compares.
// Anywhere the answer is unclear it is null, and callers do the safe thing.

import { readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';

/** Options of git itself that take the next argument as their value (git -c k=v, git -C dir, ...). */
const OPTIONS_WITH_VALUE = new Set(['-c', '-C', '--config-env', '--exec-path', '--git-dir', '--work-tree', '--namespace', '--super-prefix', '--list-cmds', '--attr-source']);

/** The git subcommand (`diff`, `checkout`, ...) in a git command line, skipping git's own options. */
export function gitSubcommand(argv: readonly string[]): string | null {
  for (let k = 1; k < argv.length; k++) {
    const arg = argv[k]!;
    if (OPTIONS_WITH_VALUE.has(arg)) k++;
    else if (!arg.startsWith('-')) return arg;
  }
  return null;
}

function procArgv(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a, k, all) => a !== '' || k < all.length - 1);
  } catch {
    return null;
  }
}

function executableName(pid: number): string | null {
  try {
    return basename(readlinkSync(`/proc/${pid}/exe`));
  } catch {
    return null;
  }
}

function parentPid(pid: number): number | null {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so parse from the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) && ppid > 0 ? ppid : null;
  } catch {
    return null;
  }
}

/**
 * The subcommand of the nearest git process above this one (a wrapper such as /usr/bin/time may sit in
 * between), or null when there is none within a few levels or /proc is not there.
 */
export function invokingGitCommand(pid = process.ppid): string | null {
  const argv = invokingGitArgv(pid);
  return argv ? gitSubcommand(argv) : null;
}

/** The whole command line of the nearest git process above this one (as invokingGitCommand finds it). */
export function invokingGitArgv(pid = process.ppid): string[] | null {
  let at: number | null = pid;
  for (let depth = 0; at && depth < 4; depth++) {
    // The executable, not argv[0]: a process may rewrite its command line (npm's title "npm exec vitest
    // run test/unit/git" ends in "git").
    if (executableName(at) === 'git') return procArgv(at) ?? [];
    at = parentPid(at);
  }
  return null;
}
