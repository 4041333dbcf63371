// Owns uploading store objects to a git host as tensor packs (docs/remote.md, "Push").
//
// The packs come laid out by layout.ts (objects copied from the local packs without re-encoding). Each
// pack becomes two root commits in a scratch repository (pack+idx, idx alone), and packs go to the host
// in order, in batches of at most `tensor.pushSizeLimit` bytes (and PACKS_PER_PUSH packs), each batch one
// atomic `git push` of never-before-used refs, finished before the next starts; the next batch is prepared
// while one is pushed, so at most two exist on disk. A pack's bytes are streamed, never held whole here.
// A push killed or refused half-way leaves the batches before it on the host, whole (each pack with its
// index), and nothing else: running it again uploads only what is still missing.

import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { GitTensorError } from '../errors/index.js';
import { LocatedObject, ObjectSource, plannedPackBytes, writePackOf } from '../store/transfer.js';
import { PACKS_PER_PUSH, TransferContext } from './context.js';
import { HostSizeLimitError, RemoteTransferError } from './errors.js';
import { HOST_SIZE_LIMIT } from './git-run.js';
import { Progress } from './progress.js';
import { idxRef, packRef } from './remote-index.js';
import { TransferCommit, TransferRepo } from './transfer-repo.js';

export interface UploadResult {
  objects: number;
  packs: number;
  /** Bytes of tensor packs uploaded (what the store holds, before git's own compression). */
  bytes: number;
  /** `git push` runs that carried packs. */
  pushes: number;
}

/** Groups packs for one push each: at most `maxPacks` packs and about `maxBytes` bytes. */
export function groupForTransfer<T>(items: readonly T[], sizeOf: (t: T) => number, maxPacks: number, maxBytes: number): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (group.length && (group.length >= maxPacks || bytes + size > maxBytes)) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(item);
    bytes += size;
  }
  if (group.length) groups.push(group);
  return groups;
}

/** Bytes one pack adds to a push: the pack, its index (64 bytes an object) and two commits with their trees. */
export function pushedBytesOf(pack: readonly LocatedObject[]): number {
  return plannedPackBytes(pack) + 64 * pack.length + 1024;
}

/** One batch of packs, committed in its own scratch repository and ready to push. */
interface PreparedBatch {
  repo: TransferRepo;
  refspecs: string[];
  /** Bytes of tensor packs in the batch. */
  bytes: number;
}

/**
 * Writes a batch's packs (payloads copied from the store and verified on the way) and commits each, with
 * its index, in a new scratch repository. Yields to the event loop between packs, so that a push running
 * meanwhile (uploadObjects) is served.
 */
async function prepareBatch(ctx: TransferContext, group: readonly LocatedObject[][]): Promise<PreparedBatch> {
  const repo = await TransferRepo.create({ parent: ctx.store.tmpDir, userConfig: ctx.userConfig, baseEnv: ctx.env });
  try {
    const staging = join(repo.dir, 'staging');
    mkdirSync(join(staging, 'tmp'), { recursive: true });
    let bytes = 0;
    const commits: TransferCommit[] = [];
    for (const pack of group) {
      const name = writePackOf(pack, staging, join(staging, 'tmp'), new ObjectSource(ctx.store));
      await yieldToEventLoop();
      if (name === null) continue;
      const packPath = join(staging, `pack-${name}.pack`);
      const idxPath = join(staging, `pack-${name}.idx`);
      const packBytes = statSync(packPath).size;
      bytes += packBytes;
      const idx = { name: 'idx', path: idxPath };
      // The pack ref before its index: a host that applies refs one by one never shows an index whose
      // pack is not there (with --atomic, both appear together anyway).
      commits.push({ ref: packRef(name), message: `git-tensor pack ${name}\n\n${pack.length} objects, ${packBytes} bytes\n`, files: [idx, { name: 'pack', path: packPath }] });
      commits.push({ ref: idxRef(name), message: `git-tensor pack index ${name}\n`, files: [idx] });
    }
    await repo.writeCommits(commits);
    // The packs now live in the scratch repository's objects; the staged copies are no longer needed.
    rmSync(staging, { recursive: true, force: true });
    return { repo, refspecs: commits.map((c) => `${c.ref}:${c.ref}`), bytes };
  } catch (err) {
    repo.dispose();
    throw err;
  }
}

/**
 * Uploads `packs` in order (layout.ts), at most `pushLimit` bytes per `git push`. Each batch is prepared
 * while the one before it is pushed: preparing is this process's work, pushing is git's (pack-objects
 * here, index-pack on the host), so the two share the cores. Pushes still run one after another, in
 * order, each finished before the next starts; at most two batches exist on disk.
 */
export async function uploadObjects(ctx: TransferContext, packs: readonly LocatedObject[][], pushLimit: number): Promise<UploadResult> {
  const result: UploadResult = { objects: packs.reduce((s, p) => s + p.length, 0), packs: packs.length, bytes: 0, pushes: 0 };
  if (!packs.length) return result;
  const total = packs.reduce((s, p) => s + plannedPackBytes(p), 0);
  const progress = new Progress('Uploading tensor packs', packs.length, { enabled: ctx.progress && ctx.verbosity > 0 });
  progress.update(0, 0);
  let done = 0;
  const groups = groupForTransfer(packs, pushedBytesOf, PACKS_PER_PUSH, pushLimit);
  let next: Promise<PreparedBatch> | undefined = prepareBatch(ctx, groups[0]!);
  for (let k = 0; k < groups.length; k++) {
    const batch = await next!;
    next = k + 1 < groups.length ? prepareBatch(ctx, groups[k + 1]!) : undefined;
    next?.catch(() => undefined); // awaited on the next turn, or below when this push fails
    try {
      const base = result.bytes;
      // A batch whose packs were all empty has nothing to push (a `git push` without refspecs would push the defaults).
      if (batch.refspecs.length) {
        await pushRefs(ctx, batch.repo, batch.refspecs, (b) => progress.update(done, Math.min(base + b, total)), { bytes: batch.bytes, limit: pushLimit });
        result.pushes++;
      }
    } catch (err) {
      await next?.then((b) => b.repo.dispose(), () => undefined);
      throw err;
    } finally {
      batch.repo.dispose();
    }
    done += groups[k]!.length;
    result.bytes += batch.bytes;
    progress.update(done, result.bytes);
  }
  progress.finish();
  return result;
}

/** Pushes content-named refs; atomically when the host can, refs already there with the same commit are fine. */
async function pushRefs(ctx: TransferContext, repo: TransferRepo, refspecs: string[], onBytes: (bytes: number) => void, size: { bytes: number; limit: number }): Promise<void> {
  const args = (atomic: boolean) => ['push', '--porcelain', '--no-verify', '--progress', ...(atomic ? ['--atomic'] : []), ctx.url, ...refspecs];
  let r;
  try {
    try {
      r = await repo.network('uploading tensor packs to', ctx.url, args(true), { onBytes, retry: ctx.retry, accept: answeredPush });
    } catch (err) {
      if (!(err instanceof RemoteTransferError) || !/does not support --atomic/i.test(err.message)) throw err;
      r = await repo.network('uploading tensor packs to', ctx.url, args(false), { onBytes, retry: ctx.retry, accept: answeredPush });
    }
  } catch (err) {
    if (err instanceof RemoteTransferError && HOST_SIZE_LIMIT.some((re) => re.test(err.message))) throw new HostSizeLimitError(ctx.url, err.message, size);
    throw err;
  }
  const statuses = parsePushPorcelain(r.stdout.toString('utf8'));
  const failed = statuses.filter((s) => !s.ok);
  if (failed.length && HOST_SIZE_LIMIT.some((re) => re.test(r.stderr))) throw new HostSizeLimitError(ctx.url, r.stderr, size);
  if (r.status !== 0 && !statuses.length) {
    throw new RemoteTransferError('uploading tensor packs to', ctx.url, r.stderr.split('\n').slice(-3).join(' / ') || `git push exited ${r.status}`, false);
  }
  if (failed.length) {
    const f = failed[0]!;
    throw new GitTensorError('E_REMOTE_REJECTED', `the host refused ${f.dst}: ${f.reason}`, {
      data: { ref: f.dst, reason: f.reason },
      hint: 'The host must accept new refs under refs/tensor/ (check branch protection or push rules for that namespace).',
    });
  }
}

/** A push that exited 1 because the host answered (refused refs), not because the transfer broke. */
export function answeredPush(r: { stdout: Buffer }): boolean {
  const statuses = parsePushPorcelain(r.stdout.toString('utf8'));
  return statuses.length > 0 && statuses.every((s) => s.ok || !/remote failure|unpacker error|failed to|hung up|disconnect/i.test(s.reason));
}

export interface PushStatus {
  dst: string;
  ok: boolean;
  /** For failures: the reason in git's helper vocabulary where one applies ("non-fast forward", "fetch first"...). */
  reason: string;
  forced: boolean;
  upToDate: boolean;
}

const HELPER_REASONS: Record<string, string> = {
  'non-fast-forward': 'non-fast forward',
  'fetch first': 'fetch first',
  'already exists': 'already exists',
  'stale info': 'stale info',
  'needs force': 'needs force',
};

/** Parses `git push --porcelain` output: `<flag>\t<src>:<dst>\t<summary> (<reason>)` per ref. */
export function parsePushPorcelain(text: string): PushStatus[] {
  const out: PushStatus[] = [];
  for (const line of text.split('\n')) {
    const parts = line.split('\t');
    if (parts.length < 3 || parts[0]!.length !== 1) continue;
    const flag = parts[0]!;
    const refs = parts[1]!;
    const summary = parts.slice(2).join('\t');
    const dst = refs.slice(refs.lastIndexOf(':') + 1);
    const reasonMatch = /\(([^)]*)\)\s*$/.exec(summary);
    const reason = reasonMatch ? reasonMatch[1]! : summary.replace(/^\[|\]$/g, '');
    if (flag === '!') out.push({ dst, ok: false, reason: HELPER_REASONS[reason] ?? reason, forced: false, upToDate: false });
    else out.push({ dst, ok: true, reason: '', forced: flag === '+', upToDate: flag === '=' });
  }
  return out;
}
