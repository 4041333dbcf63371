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

/** A boolean setting: the environment variable when set, else git config `key`, else `fallback`. */
function boolSetting(cwd: string, envName: string, key: string, fallback: boolean): boolean {
  const env = process.env[envName];
  if (env !== undefined) return env !== '0' && env.toLowerCase() !== 'false';
  const r = gitRaw(['config', '--type=bool', '--get', key], { cwd, okCodes: [1, 128] });
  return r.status !== 0 ? fallback : r.stdout.toString().trim() === 'true';
}

/**
 * `tensor.compression=false` (or GIT_TENSOR_COMPRESSION=0) stores chunks raw, gc included.
 * `tensor.compressOnAdd=true` (or GIT_TENSOR_COMPRESS_ON_ADD=1) compresses new chunks as `git add` writes
 * them instead of leaving that to `git tensor gc` (docs/store.md, "Writing fast, compressing later").
 */
function storeOptions(cwd: string): { compress: boolean; compressOnWrite: boolean } {
  return {
    compress: boolSetting(cwd, 'GIT_TENSOR_COMPRESSION', 'tensor.compression', true),
    compressOnWrite: boolSetting(cwd, 'GIT_TENSOR_COMPRESS_ON_ADD', 'tensor.compressOnAdd', false),
  };
}

export function openRepo(cwd = process.cwd()): RepoContext {
  const paths = repoPaths(cwd);
  return { ...paths, store: ObjectStore.open(storeDirOf(paths.commonDir), { codec: storeCodec(), ...storeOptions(cwd) }) };
}
