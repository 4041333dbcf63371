// Owns the tests' access to ../shared (the real safetensors fixtures beside the checkout): a fresh
// clone has no ../shared, so the tests that read it skip, with a one-line reason on stderr, instead of
// failing with ENOENT. CI, which always has ../shared, sets GIT_TENSOR_REQUIRE_SHARED=1 so that a
// missing folder fails the run rather than quietly skipping.

import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PROJECT_ROOT, SHARED_DIR } from './repo.js';

export interface SharedDir {
  dir: string;
  /** Why the tests that need `dir` skip (one line), or null when it is there. */
  skip: string | null;
}

/** A folder under ../shared, e.g. sharedDir('fixtures', 'real-safetensors'). */
export function sharedDir(...parts: string[]): SharedDir {
  const dir = join(SHARED_DIR, ...parts);
  if (existsSync(dir)) return { dir, skip: null };
  const skip = `${relative(PROJECT_ROOT, dir)} is absent (it sits beside the checkout; a fresh clone has none)`;
  if (process.env.GIT_TENSOR_REQUIRE_SHARED === '1') throw new Error(`GIT_TENSOR_REQUIRE_SHARED=1, but ${skip}`);
  process.stderr.write(`skipping the tests that need it: ${skip}\n`);
  return { dir, skip };
}

/** The test or suite name, with the skip reason appended when it skips. */
export const orSkipped = (name: string, shared: SharedDir) => (shared.skip ? `${name} (skipped: ${shared.skip})` : name);
