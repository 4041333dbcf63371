// Entry of bin/git-remote-tensor, which git runs for `tensor::<url>` remotes as
// `git-remote-tensor <remote> <url>` with GIT_DIR set (gitremote-helpers(7)). Besides cli/main.ts, the
// only place that turns errors into messages and exit codes; stdout belongs to git's protocol. The
// session itself is src/commands/remote-helper.ts.

import { remoteHelper } from '../commands/remote-helper.js';
import { exitCodeOf, formatError, UsageError } from '../errors/index.js';

export async function remoteHelperMain(args: string[]): Promise<void> {
  try {
    const [remote, url] = args;
    if (!remote) {
      throw new UsageError('git-remote-tensor is run by git, not by hand', 'Use a tensor:: remote: `git remote add origin tensor::https://host/org/model.git`, then `git push` / `git clone tensor::<url>`.');
    }
    await remoteHelper({ remote, url, cwd: process.cwd(), env: process.env, input: process.stdin, output: process.stdout });
  } catch (err) {
    process.stderr.write(formatError(err) + '\n');
    process.exitCode = exitCodeOf(err);
  }
}
