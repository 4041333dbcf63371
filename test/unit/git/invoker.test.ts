// Which git command started the filter process: git's own options are skipped, aliases and unknown
// shapes give an answer callers treat as "not a diff".

import { describe, expect, it } from 'vitest';
import { gitSubcommand, invokingGitCommand } from '../../../src/git/invoker.js';

describe('gitSubcommand', () => {
  it('skips git options, including those that take a value', () => {
    expect(gitSubcommand(['git', 'diff', 'HEAD~1'])).toBe('diff');
    expect(gitSubcommand(['/usr/bin/git', '-c', 'core.pager=cat', '-C', 'repo', '--no-pager', 'show', 'HEAD'])).toBe('show');
    expect(gitSubcommand(['git', '--git-dir', '.git', '--work-tree', '.', 'log', '-p'])).toBe('log');
    expect(gitSubcommand(['git', '-p', 'checkout', '--', 'diff'])).toBe('checkout');
    expect(gitSubcommand(['git'])).toBeNull();
    expect(gitSubcommand(['git', '--version'])).toBeNull();
  });

  it('finds no git above a process that git did not start', () => {
    expect(invokingGitCommand()).toBeNull();
  });
});
