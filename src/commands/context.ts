// Owns what every repository command starts from: the repository's paths and its tensor store.

import { join } from 'node:path';
import { gitRaw, repoPaths, RepoPaths } from '../git/exec.js';
import { storeCodec } from '../store/codec.js';
import { ObjectStore } from '../store/store.js';

export interface RepoContext extends RepoPaths {
  store: ObjectStore;
}

export function storeDirOf(commonDir: string): string {
  return join(commonDir, 'tensor');
}

/** `tensor.compression=false` (git config) or GIT_TENSOR_COMPRESSION=0 stores new chunks raw. */
function compressionWanted(cwd: string): boolean {
  if (process.env.GIT_TENSOR_COMPRESSION !== undefined) return process.env.GIT_TENSOR_COMPRESSION !== '0';
  const r = gitRaw(['config', '--type=bool', '--get', 'tensor.compression'], { cwd, okCodes: [1, 128] });
  return r.status !== 0 || r.stdout.toString().trim() !== 'false';
}

export function openRepo(cwd = process.cwd()): RepoContext {
  const paths = repoPaths(cwd);
  return { ...paths, store: ObjectStore.open(storeDirOf(paths.commonDir), { codec: storeCodec(), compress: compressionWanted(cwd) }) };
}
