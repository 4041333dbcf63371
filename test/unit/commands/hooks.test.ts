// The hook installer on real repositories: scripts written where git runs hooks (core.hooksPath
// respected), a user's own hook never overwritten, and the written script really runs `git tensor hook`.

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hookActive, hookScript, hookStatus, installHooks, uninstallHooks } from '../../../src/commands/hooks.js';
import { makeRepo } from '../../helpers/repo.js';

const NAMES = ['post-checkout', 'pre-merge-commit'];

describe('git hooks', () => {
  it('are written to .git/hooks, executable, and removed again', () => {
    const repo = makeRepo({ install: false, track: false });
    const written = installHooks(repo.dir, NAMES);
    expect(written.map((h) => h.state)).toEqual(['installed', 'installed']);
    for (const name of NAMES) {
      const path = join(repo.dir, '.git', 'hooks', name);
      expect(readFileSync(path, 'utf8')).toBe(hookScript(name));
      expect(hookActive(name, repo.dir)).toBe(true);
    }
    // Installing again (an upgrade) replaces git-tensor's own scripts without complaint.
    expect(installHooks(repo.dir, NAMES).every((h) => h.state === 'installed')).toBe(true);
    expect(uninstallHooks(repo.dir, NAMES)).toHaveLength(2);
    expect(existsSync(join(repo.dir, '.git', 'hooks', 'post-checkout'))).toBe(false);
    expect(hookActive('post-checkout', repo.dir)).toBe(false);
  });

  it('go where core.hooksPath points, relative to the work tree', () => {
    const repo = makeRepo({ install: false, track: false });
    repo.git(['config', 'core.hooksPath', 'githooks']);
    installHooks(join(repo.dir), ['post-checkout']);
    expect(existsSync(join(repo.dir, 'githooks', 'post-checkout'))).toBe(true);
    // Asked from a subfolder, the same folder.
    mkdirSync(join(repo.dir, 'sub'));
    expect(hookStatus(join(repo.dir, 'sub'), ['post-checkout'])[0]!.path).toBe(join(repo.dir, 'githooks', 'post-checkout'));
  });

  it("leave a user's own hook untouched, and see when it calls git-tensor", () => {
    const repo = makeRepo({ install: false, track: false });
    const path = join(repo.dir, '.git', 'hooks', 'post-checkout');
    writeFileSync(path, '#!/bin/sh\necho mine\n');
    chmodSync(path, 0o755);
    expect(installHooks(repo.dir, ['post-checkout'])[0]!.state).toBe('foreign');
    expect(readFileSync(path, 'utf8')).toBe('#!/bin/sh\necho mine\n');
    expect(hookActive('post-checkout', repo.dir)).toBe(false);
    expect(uninstallHooks(repo.dir, ['post-checkout'])).toEqual([]);
    expect(existsSync(path)).toBe(true);

    writeFileSync(path, '#!/bin/sh\necho mine\ngit-tensor hook post-checkout "$@"\n');
    expect(hookActive('post-checkout', repo.dir)).toBe(true);
  });

  it('run `git tensor hook <name>` when git runs them', () => {
    const repo = makeRepo({ install: false, track: false });
    installHooks(repo.dir, ['post-checkout']);
    repo.write('a.txt', 'a');
    repo.git(['add', 'a.txt']);
    repo.git(['commit', '-qm', 'a']);
    // No handler is registered under this throw-away name's twin, so the dispatcher's usage error
    // (naming the hook) proves git ran the script and the script reached git-tensor.
    const r = repo.git(['checkout', '-q', '-b', 'other'], { allowFail: true });
    expect(r.stderr + r.stdout).toMatch(/hook|post-checkout/);
  });

  it('are not installed outside a repository', () => {
    const repo = makeRepo({ install: false, track: false });
    const outside = join(repo.home, 'not-a-repo');
    mkdirSync(outside);
    expect(installHooks(outside, NAMES)).toEqual([]);
  });
});
