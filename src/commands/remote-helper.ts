// Owns the remote helper's session: git runs bin/git-remote-tensor for `tensor::<url>` remotes as
// `git-remote-tensor <remote> <url>` with GIT_DIR set (gitremote-helpers(7)); this opens the repository's
// store and serves git's commands on `input`/`output` until git closes the pipe.

import type { Writable } from 'node:stream';
import { isAbsolute, resolve } from 'node:path';
import { gitRaw } from '../git/exec.js';
import { storeCodec } from '../store/codec.js';
import { ObjectStore } from '../store/store.js';
import { TENSOR_URL_PREFIX, TransferContext, userConfigOf } from '../remote/context.js';
import { serveRemoteHelper } from '../remote/helper.js';
import { storeDirOf } from './context.js';

export interface RemoteHelperOptions {
  /** The remote's name as git gives it (or a URL when git has no name for it). */
  remote: string;
  /** The URL git gives, `tensor::` stripped or not; undefined: the remote's configured URL. */
  url?: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** git's end of the protocol: commands in, answers out (stdout belongs to git). */
  input: NodeJS.ReadableStream;
  output: Writable;
}

/** The underlying git URL: what follows `tensor::`, or the remote's configured URL when git gave none. */
function underlyingUrl(remote: string, url: string | undefined, cwd: string): string {
  let address = url;
  if (address === undefined) {
    const r = gitRaw(['config', '--get', `remote.${remote}.url`], { cwd, okCodes: [1] });
    address = r.status === 0 ? r.stdout.toString('utf8').trim() : remote;
  }
  if (address.startsWith(TENSOR_URL_PREFIX)) address = address.slice(TENSOR_URL_PREFIX.length);
  if (address.startsWith('tensor://')) address = address.slice('tensor://'.length);
  return address;
}

export async function remoteHelper(opts: RemoteHelperOptions): Promise<void> {
  const { remote, cwd } = opts;
  const common = gitRaw(['rev-parse', '--git-common-dir'], { cwd }).stdout.toString('utf8').trim();
  const commonDir = isAbsolute(common) ? common : resolve(cwd, common);
  // The codec lets uploads and downloads verify compressed and delta-encoded chunks, not only raw ones.
  const store = ObjectStore.open(storeDirOf(commonDir), { codec: storeCodec() });
  const ctx: TransferContext = {
    store,
    remoteName: remote,
    url: underlyingUrl(remote, opts.url, cwd),
    userConfig: userConfigOf(commonDir),
    cwd,
    env: opts.env,
    progress: false,
    verbosity: 1,
  };
  try {
    await serveRemoteHelper({
      ctx,
      input: opts.input,
      output: opts.output,
      onClone: async () => {
        // `git clone tensor::<url>` should check out real files even where `git tensor install --global`
        // was never run: configure the filter in the new repository when nothing configures it yet.
        const set = gitRaw(['config', '--get', 'filter.tensor.process'], { cwd, okCodes: [1] });
        if (set.status !== 0) {
          const { install } = await import('./install.js');
          await install({ scope: 'local', cwd });
        }
      },
    });
  } finally {
    store.close();
  }
}
