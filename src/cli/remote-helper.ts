// Entry of bin/git-remote-tensor, which git runs for `tensor::<url>` remotes as
// `git-remote-tensor <remote> <url>` with GIT_DIR set (gitremote-helpers(7)). Besides cli/main.ts, the
// only place that turns errors into messages and exit codes; stdout belongs to git's protocol.

import { isAbsolute, resolve } from 'node:path';
import { exitCodeOf, formatError, UsageError } from '../errors/index.js';
import { gitRaw } from '../git/exec.js';
import { storeDirOf } from '../commands/context.js';
import { storeCodec } from '../store/codec.js';
import { ObjectStore } from '../store/store.js';
import { TENSOR_URL_PREFIX, TransferContext, userConfigOf } from '../remote/context.js';
import { serveRemoteHelper } from '../remote/helper.js';

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

export async function remoteHelperMain(args: string[]): Promise<void> {
  try {
    const [remote, url] = args;
    if (!remote) {
      throw new UsageError('git-remote-tensor is run by git, not by hand', 'Use a tensor:: remote: `git remote add origin tensor::https://host/org/model.git`, then `git push` / `git clone tensor::<url>`.');
    }
    const cwd = process.cwd();
    const common = gitRaw(['rev-parse', '--git-common-dir'], { cwd }).stdout.toString('utf8').trim();
    const commonDir = isAbsolute(common) ? common : resolve(cwd, common);
    // The codec lets uploads and downloads verify compressed and delta-encoded chunks, not only raw ones.
    const store = ObjectStore.open(storeDirOf(commonDir), { codec: storeCodec() });
    const ctx: TransferContext = {
      store,
      remoteName: remote,
      url: underlyingUrl(remote, url, cwd),
      userConfig: userConfigOf(commonDir),
      cwd,
      env: process.env,
      progress: false,
      verbosity: 1,
    };
    try {
      await serveRemoteHelper({
        ctx,
        input: process.stdin,
        output: process.stdout,
        onClone: async () => {
          // `git clone tensor::<url>` should check out real files even where `git tensor install --global`
          // was never run: configure the filter in the new repository when nothing configures it yet.
          const set = gitRaw(['config', '--get', 'filter.tensor.process'], { cwd, okCodes: [1] });
          if (set.status !== 0) {
            const { install } = await import('../commands/install.js');
            await install({ scope: 'local', cwd });
          }
        },
      });
    } finally {
      store.close();
    }
  } catch (err) {
    process.stderr.write(formatError(err) + '\n');
    process.exitCode = exitCodeOf(err);
  }
}
