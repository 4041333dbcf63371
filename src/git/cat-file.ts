// Owns reading objects from git through `git cat-file --batch` and `--batch-check`: one streaming parser
// of their output that every caller uses (history scans of gc, du and fsck, remote pointer scans, the
// filter's index reads), so no caller has to hold a large blob, or all of history, in memory.
//
// Output grammar (git-cat-file(1), "BATCH OUTPUT"), one record per input line:
//
//   found     = <oid> SP <type> SP <size> LF [<size> bytes of content LF]     (content with --batch only)
//   not found = <input> SP ("missing" / "ambiguous") LF
//
// A caller reads one record's header, then reads, streams, peeks at or skips its content; whatever it
// leaves unread is skipped (not buffered) when it asks for the next header.

import { ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { GitTensorError, ProtocolError } from '../errors/index.js';
import { gitRaw } from './exec.js';
import { looksLikePointer, MAX_POINTER_BYTES } from '../format/pointer.js';

export interface CatFileHeader {
  /** The object id, or the input line for an object git does not have. */
  oid: string;
  /** blob, tree, commit, tag; or 'missing' / 'ambiguous' (then size is -1 and there is no content). */
  type: string;
  size: number;
}

/** A header line longer than this is not git's: the input echoed back for a missing object is one line. */
const MAX_HEADER_BYTES = 64 * 1024;

/**
 * Parses `git cat-file --batch[-check]` output from any stream of chunks (the parser keeps at most one
 * chunk plus what a peek asked for; content is handed on, or dropped, a chunk at a time).
 */
export class BatchOutputReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly source: AsyncIterator<Buffer>;
  private ended = false;
  /** Content bytes of the current record not yet consumed; -1 when between records. */
  private left = -1;

  constructor(source: AsyncIterable<Buffer>, private readonly withContent = true) {
    this.source = source[Symbol.asyncIterator]();
  }

  /** The next record's header, skipping any unread content of the current one; null at the end. */
  async next(): Promise<CatFileHeader | null> {
    await this.skip();
    for (;;) {
      const nl = this.buf.indexOf(10);
      if (nl >= 0) {
        const line = this.buf.toString('utf8', 0, nl);
        this.buf = this.buf.subarray(nl + 1);
        const header = parseHeader(line);
        if (this.withContent && header.size >= 0) this.left = header.size;
        return header;
      }
      if (this.buf.length > MAX_HEADER_BYTES) throw new ProtocolError('git cat-file sent a header line over 64 KiB');
      if (!(await this.pull())) {
        if (this.buf.length) throw new ProtocolError('git cat-file output ends inside a header line');
        return null;
      }
    }
  }

  /** The first min(n, size) content bytes of the current record, left unconsumed. */
  async peek(n: number): Promise<Buffer> {
    const want = Math.min(n, Math.max(this.left, 0));
    while (this.buf.length < want) if (!(await this.pull())) throw truncated();
    return this.buf.subarray(0, want);
  }

  /** The rest of the current record's content, in one buffer (the caller has checked the size). */
  async read(): Promise<Buffer> {
    if (this.left < 0) return Buffer.alloc(0);
    const out = Buffer.allocUnsafe(this.left);
    let at = 0;
    for await (const piece of this.stream()) at += piece.copy(out, at);
    return out;
  }

  /** The rest of the current record's content, a piece at a time. */
  async *stream(): AsyncGenerator<Buffer> {
    while (this.left > 0) {
      if (!this.buf.length && !(await this.pull())) throw truncated();
      const n = Math.min(this.left, this.buf.length);
      const piece = this.buf.subarray(0, n);
      this.buf = this.buf.subarray(n);
      this.left -= n;
      yield piece;
    }
    if (this.left === 0) await this.endRecord();
  }

  /** Drops the rest of the current record's content without keeping it. */
  async skip(): Promise<void> {
    for await (const _ of this.stream()) {
      // discarded
    }
  }

  private async endRecord(): Promise<void> {
    if (!this.buf.length && !(await this.pull())) throw truncated();
    if (this.buf[0] !== 10) throw new ProtocolError('git cat-file content is not followed by a newline');
    this.buf = this.buf.subarray(1);
    this.left = -1;
  }

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.source.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    return true;
  }
}

function truncated(): ProtocolError {
  return new ProtocolError('git cat-file output ends inside an object');
}

function parseHeader(line: string): CatFileHeader {
  const m = /^(\S+) (\S+) (\d+)$/.exec(line);
  if (m) return { oid: m[1]!, type: m[2]!, size: Number(m[3]) };
  const gone = / (missing|ambiguous)$/.exec(line);
  if (gone) return { oid: line.slice(0, gone.index), type: gone[1]!, size: -1 };
  throw new ProtocolError(`unexpected git cat-file header ${JSON.stringify(line.slice(0, 200))}`);
}

/**
 * Headers of `specs` (or, with `all`, of every object in the repository) by one synchronous
 * `git cat-file --batch-check`: sizes and types only, no content, so the output is small.
 */
export function batchCheck(specs: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; all?: boolean } = {}): CatFileHeader[] {
  if (!specs.length && !opts.all) return [];
  const args = opts.all ? ['cat-file', '--batch-check', '--batch-all-objects'] : ['cat-file', '--batch-check'];
  const out = gitRaw(args, { cwd: opts.cwd, env: opts.env, input: opts.all ? undefined : specs.join('\n') + '\n' }).stdout;
  return out.toString('utf8').split('\n').filter(Boolean).map(parseHeader);
}

export interface CatFileOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** `--batch-check`: headers only (default false: `--batch`, with content). */
  check?: boolean;
}

/**
 * One `git cat-file --batch` (or `--batch-check`) process. Either ask for objects one at a time with
 * `ask()` (a long-lived reader, e.g. the filter process reading index versions), or hand it every spec
 * at once with `objects()`.
 */
export class CatFile {
  private readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  readonly reader: BatchOutputReader;
  private failed: Error | undefined;
  /** The end of git's stderr, for the message when it stops early. */
  private stderr = '';
  private readonly closed: Promise<void>;

  constructor(opts: CatFileOptions = {}) {
    const mode = opts.check ? '--batch-check' : '--batch';
    this.child = spawn('git', ['cat-file', mode], { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.on('error', (err) => (this.failed = err));
    this.closed = new Promise((resolve) => this.child.once('close', () => resolve()));
    this.child.stderr.on('data', (c: Buffer) => (this.stderr = (this.stderr + c.toString('utf8')).slice(-2000)));
    // A git that exits early (bad repository) closes stdin under us: the reader reports the short output.
    this.child.stdin.on('error', () => undefined);
    this.reader = new BatchOutputReader(this.child.stdout, !opts.check);
  }

  /** Asks for one object; its content (if any) is then read through `reader`, or skipped by the next ask. */
  async ask(spec: string): Promise<CatFileHeader | null> {
    if (/[\n\0]/.test(spec)) return null;
    await this.reader.skip();
    this.child.stdin.write(spec + '\n');
    const header = await this.reader.next();
    if (!header) throw await this.stopped();
    return header;
  }

  /** Asks for every spec and yields their headers in order; read each one's content through `reader`. */
  async *objects(specs: Iterable<string>): AsyncGenerator<CatFileHeader> {
    const list = [...specs];
    this.writeAll(list);
    for (let k = 0; k < list.length; k++) {
      const header = await this.reader.next();
      if (!header) throw await this.stopped();
      yield header;
    }
  }

  private async stopped(): Promise<GitTensorError> {
    // Its stderr may still be in flight when its stdout ends: wait for git to be gone.
    if (!this.failed) await this.closed;
    const why = this.failed?.message ?? (this.stderr.trim() || 'no message');
    return new GitTensorError('E_GIT', `git cat-file stopped before answering every object: ${why}`, { hint: 'Check the repository with `git fsck`.' });
  }

  close(): void {
    this.child.stdin.end();
    this.child.stdout.destroy();
  }

  /** Writes the specs with back-pressure, while the caller reads answers (git answers as it reads). */
  private writeAll(specs: string[]): void {
    const stdin = this.child.stdin;
    let k = 0;
    const pump = (): void => {
      while (k < specs.length) {
        const batch = specs.slice(k, k + 4096);
        k += batch.length;
        if (!stdin.write(batch.join('\n') + '\n')) {
          stdin.once('drain', pump);
          return;
        }
      }
      stdin.end();
    };
    pump();
  }
}

/**
 * The blobs among `oids` that can be pointers, with their content: at most MAX_POINTER_BYTES long and
 * starting like one. `git cat-file --batch-check` gives sizes first, so larger blobs are never read;
 * the rest are read one at a time and dropped after their first bytes unless they start like a pointer.
 */
export async function* pointerCandidates(oids: Iterable<string>, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): AsyncGenerator<{ oid: string; blob: Buffer }> {
  const unique = [...new Set(oids)];
  if (!unique.length) return;
  const small: string[] = [];
  const check = new CatFile({ ...opts, check: true });
  try {
    for await (const h of check.objects(unique)) if (h.type === 'blob' && h.size <= MAX_POINTER_BYTES) small.push(h.oid);
  } finally {
    check.close();
  }
  if (!small.length) return;
  const batch = new CatFile(opts);
  try {
    for await (const h of batch.objects(small)) {
      if (h.type !== 'blob') continue;
      if (!looksLikePointer(await batch.reader.peek(32))) continue;
      yield { oid: h.oid, blob: await batch.reader.read() };
    }
  } finally {
    batch.close();
  }
}

/** pointerCandidates() collected into a map by blob id. */
export async function readPointerBlobs(oids: Iterable<string>, cwd?: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for await (const { oid, blob } of pointerCandidates(oids, { cwd })) out.set(oid, blob);
  return out;
}

/**
 * Whole objects of any type (blobs, trees) by spec (`<oid>` or `<rev>:<path>`), for small files read
 * whole anyway (a model's config.json, tokenizer.json, a tree); missing objects and objects over
 * `maxBytes` are left out unread.
 */
export async function readObjects(specs: Iterable<string>, opts: { cwd?: string; maxBytes: number }): Promise<Map<string, Buffer>> {
  const unique = [...new Set(specs)];
  const out = new Map<string, Buffer>();
  if (!unique.length) return out;
  const batch = new CatFile({ cwd: opts.cwd });
  try {
    let k = 0;
    for await (const h of batch.objects(unique)) {
      const spec = unique[k++]!;
      if (h.size >= 0 && h.size <= opts.maxBytes) out.set(spec, await batch.reader.read());
    }
  } finally {
    batch.close();
  }
  return out;
}
