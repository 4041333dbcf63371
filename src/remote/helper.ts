// Owns git's remote-helper protocol for `tensor::<url>` remotes (gitremote-helpers(7)), implemented with
// the `fetch`, `push` and `option` capabilities by running the real git against the underlying URL:
//
//   git> capabilities                       we> option / fetch / push / (blank)
//   git> option <name> <value>              we> ok | unsupported | error <msg>
//   git> list [for-push]                    we> <sha> <ref> ... / @<target> HEAD / (blank)
//   git> fetch <sha> <ref> ... (blank)      we> (blank), once the objects are in the local object store
//   git> push [+]<src>:<dst> ... (blank)    we> ok <dst> | error <dst> <why> ... / (blank)
//
// `list` is `git ls-remote` without refs/tensor/*, which stay hidden from the user. `fetch` runs
// `git fetch <url>` into the private namespace refs/tensor-remote/<remote>/* (git then updates the user's
// refs from the objects it finds there) and refreshes the cache of the remote's pack indexes. `push`
// first uploads the tensor objects the remote lacks for the pushed commits, then runs `git push <url>`
// for the user's refs and reports each ref's outcome in git's vocabulary. Checkpoint bytes are not
// fetched here: a checkout downloads what it needs (lazy fetch, src/remote/lazy-fetch.ts).

import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { formatError, GitTensorError, ProtocolError } from '../errors/index.js';
import { gitRaw } from '../git/exec.js';
import { packSizeLimit, pushSizeLimit, retriesFromConfig, retryNotice, TransferContext } from './context.js';
import { PushMissingObjectsError, RemoteTransferError } from './errors.js';
import { runNetworkGit, transferEnv } from './git-run.js';
import { planUpload } from './layout.js';
import { existingObjects, idsWithUsers } from './pointers.js';
import { listRemote, RemoteIndex, RemoteListing, TENSOR_REF_PREFIX } from './remote-index.js';
import { answeredPush, parsePushPorcelain, uploadObjects } from './upload.js';

/** Reads a stream line by line on demand (git waits for each answer before it writes more). */
export class LineReader {
  private buffer = '';
  private ended = false;
  private readonly waiting: (() => void)[] = [];

  constructor(input: NodeJS.ReadableStream) {
    input.setEncoding?.('utf8');
    input.on('data', (d: string | Buffer) => {
      this.buffer += d.toString();
      this.wake();
    });
    input.on('end', () => {
      this.ended = true;
      this.wake();
    });
  }

  /** The next line without its LF, or null at the end of input. */
  async next(): Promise<string | null> {
    for (;;) {
      const nl = this.buffer.indexOf('\n');
      if (nl >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        return line;
      }
      if (this.ended) {
        if (!this.buffer) return null;
        const rest = this.buffer;
        this.buffer = '';
        return rest;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private wake(): void {
    for (const w of this.waiting.splice(0)) w();
  }
}

export interface HelperOptions {
  ctx: TransferContext;
  input: NodeJS.ReadableStream;
  output: Writable;
  /** Called once when git announces a clone, before anything is fetched (e.g. to configure the filter). */
  onClone?: () => Promise<void> | void;
}

interface HelperState {
  dryRun: boolean;
  atomic: boolean;
  pushOptions: string[];
  /** --force-with-lease expectations: ref -> expected value (empty: must not exist). */
  cas: string[];
  cloning: boolean;
  /** Shallow-fetch arguments for the inner `git fetch` (--depth, --shallow-since, ...). */
  shallow: string[];
  deepenRelative: boolean;
  listing?: RemoteListing;
}

/** Unquotes a C-style quoted option value as git writes it (quote_c_style). */
export function unquoteC(value: string): string {
  if (!value.startsWith('"') || !value.endsWith('"') || value.length < 2) return value;
  return value.slice(1, -1).replace(/\\([\\"abfnrtv]|[0-7]{3})/g, (_, c: string) => {
    const map: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"' };
    return map[c] ?? String.fromCharCode(parseInt(c, 8));
  });
}

/** Where fetched refs of a remote are kept: refs/tensor-remote/<key>/, <key> the remote's name or a hash of its URL. */
export function privateNamespace(remoteName: string, url: string): string {
  const key = remoteName !== url && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(remoteName) && !remoteName.endsWith('.lock')
    ? remoteName
    : `url-${createHash('sha256').update(url).digest('hex').slice(0, 12)}`;
  return `refs/tensor-remote/${key}/`;
}

function privateRef(ns: string, ref: string): string {
  return ns + (ref.startsWith('refs/') ? ref.slice(5) : ref);
}

export async function serveRemoteHelper(opts: HelperOptions): Promise<void> {
  const { ctx, output } = opts;
  const reader = new LineReader(opts.input);
  const state: HelperState = { dryRun: false, atomic: false, pushOptions: [], cas: [], cloning: false, shallow: [], deepenRelative: false };
  const say = (text: string): void => {
    output.write(text);
  };
  const retries = retriesFromConfig(ctx.cwd, ctx.env);
  ctx.retry = { attempts: retries + 1, onRetry: (err, attempt, delay) => retryNotice(ctx.verbosity)?.(err, attempt, delay) };

  for (;;) {
    const line = await reader.next();
    if (line === null || line === '') return;
    const [cmd, ...rest] = line.split(' ');
    if (cmd === 'capabilities') {
      say('option\nfetch\npush\n\n');
    } else if (cmd === 'option') {
      say(await setOption(ctx, state, rest[0] ?? '', rest.slice(1).join(' '), opts.onClone) + '\n');
    } else if (cmd === 'list') {
      state.listing = await listRemote(ctx);
      say(formatList(state.listing));
    } else if (cmd === 'fetch') {
      const batch = [line];
      for (let l = await reader.next(); l !== null && l !== ''; l = await reader.next()) batch.push(l);
      await fetchRefs(ctx, state, batch.map((l) => l.split(' ')).map(([, sha, name]) => ({ sha: sha!, name: name! })));
      say('\n');
    } else if (cmd === 'push') {
      const batch = [line];
      for (let l = await reader.next(); l !== null && l !== ''; l = await reader.next()) {
        if (l.startsWith('option ')) {
          const [, name, ...value] = l.split(' ');
          say(await setOption(ctx, state, name ?? '', value.join(' '), opts.onClone) + '\n');
        } else {
          batch.push(l);
        }
      }
      const specs = batch.map((l) => parsePushSpec(l.slice('push '.length)));
      say(await pushRefs(ctx, state, specs));
    } else {
      throw new ProtocolError(`git-remote-tensor: unknown command ${JSON.stringify(line)} from git`);
    }
  }
}

async function setOption(ctx: TransferContext, state: HelperState, name: string, value: string, onClone?: () => Promise<void> | void): Promise<string> {
  switch (name) {
    case 'verbosity':
      ctx.verbosity = Number(value) || 0;
      return 'ok';
    case 'progress':
      ctx.progress = value === 'true';
      return 'ok';
    case 'dry-run':
      state.dryRun = value === 'true';
      return 'ok';
    case 'atomic':
      state.atomic = value === 'true';
      return 'ok';
    case 'force':
    case 'followtags':
      // Forced updates arrive as `+` in each push spec; tags git wants come as their own fetch lines.
      return 'ok';
    case 'push-option':
      state.pushOptions.push(unquoteC(value));
      return 'ok';
    case 'cas':
      state.cas.push(unquoteC(value));
      return 'ok';
    case 'depth':
      if (!/^\d+$/.test(value)) return 'error depth must be a number';
      state.shallow.push(`--depth=${value}`);
      return 'ok';
    case 'deepen-since':
      state.shallow.push(`--shallow-since=${unquoteC(value)}`);
      return 'ok';
    case 'deepen-not':
      state.shallow.push(`--shallow-exclude=${unquoteC(value)}`);
      return 'ok';
    case 'deepen-relative':
      state.deepenRelative = value === 'true';
      return 'ok';
    case 'update-shallow':
      if (value === 'true') state.shallow.push('--update-shallow');
      return 'ok';
    case 'cloning':
      state.cloning = value === 'true';
      if (state.cloning) await onClone?.();
      return 'ok';
    default:
      return 'unsupported';
  }
}

export function formatList(listing: RemoteListing): string {
  const lines: string[] = [];
  for (const [name, target] of listing.symrefs) if (!target.startsWith(TENSOR_REF_PREFIX)) lines.push(`@${target} ${name}`);
  for (const [name, sha] of listing.refs) {
    if (name.startsWith(TENSOR_REF_PREFIX) || listing.symrefs.has(name)) continue;
    lines.push(`${sha} ${name}`);
  }
  return lines.join('\n') + (lines.length ? '\n' : '') + '\n';
}

async function fetchRefs(ctx: TransferContext, state: HelperState, wants: { sha: string; name: string }[]): Promise<void> {
  const ns = privateNamespace(ctx.remoteName, ctx.url);
  const refspecs = [...new Set(wants.map((w) => `+${w.name}:${privateRef(ns, w.name)}`))];
  // --deepen=N is --depth=N relative to the current boundary (git's own `option deepen-relative`).
  const shallow = state.shallow.map((a) => (state.deepenRelative ? a.replace(/^--depth=/, '--deepen=') : a));
  const args = ['fetch', '--no-tags', '--no-write-fetch-head', '--no-auto-gc', '--no-recurse-submodules', '-q',
    ctx.progress && ctx.verbosity > 0 ? '--progress' : '--no-progress', ...shallow, '--stdin', ctx.url];
  await runNetworkGit('fetching from', ctx.url, args, {
    cwd: ctx.cwd, env: transferEnv(ctx.env), input: refspecs.join('\n') + '\n', retry: ctx.retry,
    forwardStderr: true, forwardProgress: true,
  });
  const have = new Set(existingObjects(wants.map((w) => w.sha), ctx.cwd, ctx.env));
  const moved = wants.filter((w) => !have.has(w.sha));
  if (moved.length) {
    throw new RemoteTransferError('fetching from', ctx.url, `${moved[0]!.name} moved on the remote while fetching (expected ${moved[0]!.sha.slice(0, 12)})`, true);
  }
  if (state.listing) {
    // Branches deleted on the remote leave the private namespace too (they would keep objects alive).
    const listed = new Set([...state.listing.refs.keys()].map((r) => privateRef(ns, r)));
    const mine = gitRaw(['for-each-ref', '--format=%(refname)', ns], { cwd: ctx.cwd, env: ctx.env }).stdout.toString('utf8').split('\n').filter(Boolean);
    const stale = mine.filter((r) => !listed.has(r));
    if (stale.length) gitRaw(['update-ref', '--stdin'], { cwd: ctx.cwd, env: ctx.env, input: stale.map((r) => `delete ${r}\n`).join('') });
  }
  // Keep the cache of the remote's pack indexes current, so a checkout right after knows where objects are.
  if (state.listing) {
    const index = new RemoteIndex(ctx.store, ctx.url);
    try {
      await index.sync(ctx, state.listing);
    } finally {
      index.close();
    }
  }
}

export interface PushSpec {
  force: boolean;
  /** Local ref or object id; empty for a deletion. */
  src: string;
  dst: string;
}

export function parsePushSpec(spec: string): PushSpec {
  const force = spec.startsWith('+');
  const body = force ? spec.slice(1) : spec;
  const colon = body.lastIndexOf(':');
  return { force, src: body.slice(0, colon), dst: body.slice(colon + 1) };
}

function statusLine(dst: string, error?: string): string {
  if (error === undefined) return `ok ${dst}\n`;
  const why = /[\n"\\]/.test(error) ? JSON.stringify(error) : error;
  return `error ${dst} ${why}\n`;
}

async function pushRefs(ctx: TransferContext, state: HelperState, specs: PushSpec[]): Promise<string> {
  const updates = specs.filter((s) => s.src !== '');
  try {
    if (updates.length && !state.dryRun) await uploadTensorObjects(ctx, state, updates.map((s) => s.src));
  } catch (err) {
    if (!(err instanceof GitTensorError)) throw err;
    process.stderr.write(formatError(err) + '\n');
    return specs.map((s) => statusLine(s.dst, `tensor objects not uploaded (${err.code})`)).join('') + '\n';
  }
  return (await pushUserRefs(ctx, state, specs)) + '\n';
}

/** Uploads what the remote lacks of the tensor objects that the commits being pushed need. */
async function uploadTensorObjects(ctx: TransferContext, state: HelperState, srcs: string[]): Promise<void> {
  const listing = state.listing ?? (await listRemote(ctx));
  const remoteTips = [...listing.refs].filter(([name]) => !name.startsWith(TENSOR_REF_PREFIX)).map(([, sha]) => sha);
  const roots = await idsWithUsers(srcs, remoteTips, ctx.cwd);

  if (!roots.size) return;
  const index = new RemoteIndex(ctx.store, ctx.url);
  try {
    await index.sync(ctx, listing);
    // An object the remote has is complete there: what an object needs is published before it.
    const pushLimit = pushSizeLimit(ctx.cwd, ctx.env);
    const packLimit = Math.min(packSizeLimit(ctx.cwd, ctx.env), pushLimit);
    const { packs, absent } = planUpload(ctx.store, roots, (id) => index.has(id), packLimit);

    if (absent.length) throw new PushMissingObjectsError(ctx.url, absent);
    await uploadObjects(ctx, packs, pushLimit);
  } finally {
    index.close();
  }
}

/** Pushes the user's refs with the real git and answers git with each ref's outcome. */
async function pushUserRefs(ctx: TransferContext, state: HelperState, specs: PushSpec[]): Promise<string> {
  const args = [
    // The outer git already ran the pre-push hook, follows tags and reads push options from config.
    '-c', 'advice.pushUpdateRejected=false', '-c', 'push.followTags=false', '-c', 'push.recurseSubmodules=no',
    '-c', 'push.pushOption=', '-c', 'push.gpgSign=false',
    'push', '--porcelain', '--no-verify', ctx.progress && ctx.verbosity > 0 ? '--progress' : '-q',
    ...(state.atomic ? ['--atomic'] : []), ...(state.dryRun ? ['--dry-run'] : []),
    ...state.cas.map((c) => `--force-with-lease=${c}`), ...state.pushOptions.map((o) => `--push-option=${o}`),
    ctx.url, ...specs.map((s) => `${s.force ? '+' : ''}${s.src}:${s.dst}`),
  ];
  let r;
  try {
    r = await runNetworkGit('pushing to', ctx.url, args, {
      cwd: ctx.cwd, env: transferEnv(ctx.env), retry: ctx.retry, accept: answeredPush,
      forwardStderr: (line) => !/^error: failed to push some refs/.test(line) && !/^To /.test(line), forwardProgress: true,
    });
  } catch (err) {
    if (!(err instanceof GitTensorError)) throw err;
    process.stderr.write(formatError(err) + '\n');
    return specs.map((s) => statusLine(s.dst, err.message.split('\n')[0]!)).join('');
  }
  const statuses = new Map(parsePushPorcelain(r.stdout.toString('utf8')).map((s) => [s.dst, s]));
  return specs.map((s) => {
    const st = statuses.get(s.dst);
    if (!st) return statusLine(s.dst, r.status === 0 ? undefined : 'no status from the remote');
    if (st.upToDate) return statusLine(s.dst, 'up to date');
    if (!st.ok) return statusLine(s.dst, st.reason);
    return st.forced ? `ok ${s.dst} forced update\n` : statusLine(s.dst);
  }).join('');
}
