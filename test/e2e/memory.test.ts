// Memory stays bounded whatever history holds: a repository with one large ordinary (non-pointer) file
// committed next to a tracked checkpoint. `git tensor gc`, `du` and `fsck --all` scan every blob of
// history for pointers, and checkout smudges the large file through the filter at a tracked path; the
// peak resident memory of each (the largest process of the command's tree, by /usr/bin/time -v) stays
// under a bound below the file's size. Before the scans streamed, gc peaked at about twice the file.

import { existsSync, statSync, truncateSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { tinyModel, toSafetensors } from '../helpers/models.js';
import { makeRepo, run, type Repo } from '../helpers/repo.js';

const TIME = '/usr/bin/time';
const LARGE_BYTES = 300 * 1024 * 1024;
const BOUND_KIB = 256 * 1024;

/** Peak RSS in KiB of the largest process `git <args>` ran (git, git-tensor's node, git cat-file...). */
function peakKiB(repo: Repo, args: string[]): number {
  const r = run(TIME, ['-v', 'git', ...args], repo.dir, repo.env, { allowFail: true, timeoutMs: 300_000 });
  expect(r.status, r.stdout + r.stderr).toBeLessThan(2);
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  expect(m, r.stderr).not.toBeNull();
  return Number(m![1]);
}

describe.skipIf(!existsSync(TIME))('bounded memory with a 300 MiB ordinary file in history (needs /usr/bin/time)', () => {
  let repo: Repo;
  beforeAll(() => {
    repo = makeRepo({ scope: 'file' });
    repo.write('model.safetensors', toSafetensors(tinyModel({ seed: 'memory' }), { format: 'pt' }));
    repo.commit(['model.safetensors'], 'model');
    // Sparse zeros: fast to make, and git stores them compressed; reading the blob still yields 300 MiB.
    repo.write('data.bin', '');
    truncateSync(repo.path('data.bin'), LARGE_BYTES);
    repo.commit(['data.bin'], 'large ordinary file');
  }, 300_000);

  for (const args of [['tensor', 'gc'], ['tensor', 'du'], ['tensor', 'fsck', '--all']]) {
    it(`git ${args.join(' ')} peaks under ${BOUND_KIB >> 10} MiB`, () => {
      expect(peakKiB(repo, args)).toBeLessThan(BOUND_KIB);
    }, 300_000);
  }

  it('smudge passes a large non-pointer blob at a tracked path through, without holding it', () => {
    // Committed without the clean filter, as a file added before it was tracked would be.
    const oid = repo.git(['rev-parse', 'HEAD:data.bin']).stdout.trim();
    repo.git(['update-index', '--add', '--cacheinfo', `100644,${oid},big.safetensors`]);
    repo.git(['commit', '-q', '-m', 'large file at a tracked path']);
    // git itself holds a blob it filters (its own peak is the file's size), so the filter process is
    // measured on its own, wrapped in /usr/bin/time.
    const wrapped = run('git', ['-c', `filter.tensor.process=${TIME} -v -o ${repo.path('.git/filter-time.txt')} git-tensor filter-process`, 'checkout', '-q', 'HEAD', '--', 'big.safetensors'], repo.dir, repo.env, { timeoutMs: 300_000 });
    expect(wrapped.status).toBe(0);
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(repo.read('.git/filter-time.txt').toString('utf8'));
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(BOUND_KIB);
    expect(statSync(repo.path('big.safetensors')).size).toBe(LARGE_BYTES);
  }, 300_000);
});
