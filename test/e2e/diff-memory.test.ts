// `git diff` and `git tensor diff` on a tensor of Llama-2's embedding size ([32000, 4096] BF16, 250 MiB)
// hold a block of each version, not both versions whole (issue #15): the peak resident memory of the
// largest process (git, or git-tensor's diff driver; /usr/bin/time -v) stays under 400 MiB, where
// reading both versions whole peaked at about 620 MiB. The change counts are those of the edits made.

import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { toSafetensors } from '../helpers/models.js';
import { makeRepo, run, type Repo } from '../helpers/repo.js';

const TIME = '/usr/bin/time';
const BOUND_KIB = 400 * 1024;
const ROWS = 32000, COLS = 4096;
const N = ROWS * COLS;
/** The sparse edit flips one mantissa bit of every STRIDE-th element. */
const STRIDE = 997;

/** BF16 bits of weight-like values: random sign, magnitudes 2^-9 to 2^-6, random 7-bit mantissa (xorshift32). */
function weights(): Buffer {
  const out = Buffer.allocUnsafe(N * 2);
  let x = 0x12345678;
  for (let j = 0; j < N; j++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    const bits = ((x >>> 31) << 15) | ((118 + ((x >>> 7) & 3)) << 7) | (x & 0x7f);
    out.writeUInt16LE(bits, 2 * j);
  }
  return out;
}

function checkpoint(data: Buffer): Buffer {
  return toSafetensors([{ name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [ROWS, COLS], data }]);
}

function peakKiB(repo: Repo, args: string[]): { kib: number; stdout: string } {
  const r = run(TIME, ['-v', 'git', ...args], repo.dir, repo.env, { allowFail: true, timeoutMs: 300_000 });
  expect(r.status, r.stdout + r.stderr).toBe(0);
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  expect(m, r.stderr).not.toBeNull();
  return { kib: Number(m![1]), stdout: r.stdout };
}

describe.skipIf(!existsSync(TIME))('diff memory on a 250 MiB tensor (needs /usr/bin/time)', () => {
  let repo: Repo;
  beforeAll(() => {
    repo = makeRepo({ scope: 'file' });
    const base = weights();
    repo.write('model.safetensors', checkpoint(base));
    repo.commit(['model.safetensors'], 'base');
    const sparse = Buffer.from(base);
    for (let j = 0; j < N; j += STRIDE) sparse[2 * j] = sparse[2 * j]! ^ 1;
    repo.write('model.safetensors', checkpoint(sparse));
    repo.commit(['model.safetensors'], 'sparse');
    const dense = Buffer.from(base);
    for (let j = 0; j < N; j++) dense[2 * j] = dense[2 * j]! ^ 1;
    repo.write('model.safetensors', checkpoint(dense));
    repo.commit(['model.safetensors'], 'dense');
  }, 600_000);

  const cases = [['sparse', 'HEAD~2', 'HEAD~1', Math.ceil(N / STRIDE)], ['dense', 'HEAD~2', 'HEAD', N]] as const;
  for (const [what, from, to, changed] of cases) {
    it(`git diff of a ${what} change peaks under ${BOUND_KIB >> 10} MiB`, () => {
      const { kib, stdout } = peakKiB(repo, ['diff', from, to]);
      expect(stdout).toContain('model.embed_tokens.weight');
      expect(kib).toBeLessThan(BOUND_KIB);
    }, 300_000);

    it(`git tensor diff of a ${what} change peaks under ${BOUND_KIB >> 10} MiB and counts the edited elements`, () => {
      const { kib, stdout } = peakKiB(repo, ['tensor', 'diff', '--json', from, to]);
      const t = JSON.parse(stdout).files[0].tensors[0];
      expect(t).toMatchObject({ name: 'model.embed_tokens.weight', changed_elements: changed, elements: N });
      expect(kib).toBeLessThan(BOUND_KIB);
    }, 300_000);
  }
});
