// Owns the errors of tensor transfers to and from a git host. Each has a stable code, names the object,
// the ref and the remote it is about, and says what to run next (DESIGN.md principle 10).

import { ExitCode, GitTensorError } from '../errors/index.js';

function shortList(ids: readonly string[]): string {
  return ids.slice(0, 5).map((id) => id.slice(0, 16)).join(', ') + (ids.length > 5 ? `, ... (${ids.length} in all)` : '');
}

/** A git command that talks to the host failed (after retries when the failure looked transient). */
export class RemoteTransferError extends GitTensorError {
  constructor(what: string, url: string, detail: string, readonly transient: boolean, attempts = 1) {
    super('E_REMOTE_TRANSFER', `${what} ${redactUrl(url)} failed${attempts > 1 ? ` after ${attempts} attempts` : ''}: ${detail}`, {
      data: { url: redactUrl(url), transient, attempts },
      hint: transient
        ? 'The network or the host failed; run the same command again: finished packs are kept and it resumes where it stopped.'
        : 'Check the URL and your credentials with `git ls-remote <url>`, then run the same command again.',
    });
  }
}

/** The host refused a push of tensor packs for its size (per push or per file). */
export class HostSizeLimitError extends GitTensorError {
  constructor(url: string, detail: string, size: { bytes: number; limit: number }) {
    const mib = (n: number) => `${(n / (1 << 20)).toFixed(1)} MiB`;
    const parts = detail.split(/\n| \/ /).map((l) => l.trim()).filter(Boolean);
    const why = parts.find((l) => /exceed|larger than|too large/i.test(l)) ?? parts[parts.length - 1] ?? detail;
    super('E_REMOTE_TOO_LARGE', `${redactUrl(url)} refused a push of ${mib(size.bytes)} of tensor packs for its size: ${why}`, {
      data: { url: redactUrl(url), bytes: size.bytes, pushSizeLimit: size.limit },
      hint: `Lower the size of one push (\`git config tensor.pushSizeLimit 512m\`, now ${mib(size.limit)}) or of one pack, the host's ` +
        `per-file limit (\`git config tensor.packSizeLimit 32m\`), then push again: packs already on the host are kept (docs/remote.md, "Host limits").`,
    });
  }
}

/** The remote's index lists objects in a pack whose ref is gone (or never arrived). */
export class RemotePackMissingError extends GitTensorError {
  constructor(url: string, pack: string, ids: readonly string[], data: { file?: string } = {}) {
    const ref = `refs/tensor/packs/${pack}`;
    super('E_REMOTE_PACK_MISSING', `${data.file ? data.file + ': ' : ''}object ${ids[0]?.slice(0, 16)} is in pack ${pack.slice(0, 16)}, ` +
      `but ${redactUrl(url)} has no ref ${ref}`, {
      data: { ...data, url: redactUrl(url), ref, pack, ids: [...ids] },
      exitCode: ExitCode.missingObjects,
      hint: `The pack was deleted on the host or its upload never finished. Push again from a clone that has the objects ` +
        `(\`git push\` re-uploads what the remote lacks), or ask the host's owner to restore ${ref}.`,
    });
  }
}

/** Objects a checkout or fetch needs are in no pack the remote advertises. */
export class RemoteObjectsMissingError extends GitTensorError {
  constructor(remote: string, url: string, ids: readonly string[], data: { file?: string } = {}) {
    super('E_REMOTE_MISSING_OBJECTS', `${data.file ? data.file + ': ' : ''}${ids.length} object(s) are in no tensor pack of ` +
      `remote ${remote} (${redactUrl(url)}): ${shortList(ids)}`, {
      data: { ...data, remote, url: redactUrl(url), ids: [...ids] },
      exitCode: ExitCode.missingObjects,
      hint: 'Push them from the clone that committed them (`git push` uploads what the remote lacks), or fetch from the remote ' +
        'that has them: `git tensor fetch --remote <name>`.',
    });
  }
}

/** A push needs objects that neither this store nor the remote holds. */
export class PushMissingObjectsError extends GitTensorError {
  constructor(url: string, ids: readonly string[]) {
    super('E_PUSH_MISSING_OBJECTS', `cannot push to ${redactUrl(url)}: ${ids.length} object(s) of the pushed commits are neither ` +
      `in the local tensor store nor on the remote: ${shortList(ids)}`, {
      data: { url: redactUrl(url), ids: [...ids] },
      exitCode: ExitCode.missingObjects,
      hint: 'Fetch them first from the remote that has them (`git tensor fetch --all --remote <name>`), then push again.',
    });
  }
}

export class NoTensorRemoteError extends GitTensorError {
  constructor(detail: string) {
    super('E_NO_REMOTE', detail, {
      exitCode: ExitCode.usage,
      hint: 'Add one with `git remote add origin tensor::https://host/org/model.git`, or name one with --remote.',
    });
  }
}

/** Strips user:password@ from URLs before they reach a message. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
}
