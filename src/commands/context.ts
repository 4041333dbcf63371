// Owns what every repository command starts from: the repository's paths and its tensor store.

import { join } from 'node:path';
import { repoPaths, RepoPaths } from '../git/exec.js';
import { ObjectStore } from '../store/store.js';

export interface RepoContext extends RepoPaths {
  store: ObjectStore;
}

export function storeDirOf(commonDir: string): string {
  return join(commonDir, 'tensor');
}

export function openRepo(cwd = process.cwd()): RepoContext {
  const paths = repoPaths(cwd);
  return { ...paths, store: ObjectStore.open(storeDirOf(paths.commonDir)) };
}
