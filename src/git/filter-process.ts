// Owns git's long-running filter protocol (gitattributes(5), "Long Running Filter Process"), version 2:
//
//   git> git-filter-client / version=2 / flush      we> git-filter-server / version=2 / flush
//   git> capability=clean / capability=smudge / ... / flush
//   we>  capability=clean / capability=smudge / flush
//   per file:
//   git> command=<clean|smudge> / pathname=<path> / [key=value...] / flush / <content> / flush
//   we>  status=success / flush / <content> / flush / [status=error] flush     (or status=error / flush)
//
// Handlers get the path and the content; they know nothing of pkt-lines. A handler that throws turns into
// status=error for that file only, after the rest of its content is drained, so git reports which file
// failed and the process keeps serving the next one.

import { FLUSH, PacketReader, PacketWriter } from './pktline.js';
import type { Writable } from 'node:stream';
import { ProtocolError } from '../errors/index.js';

export interface FilterRequest {
  command: 'clean' | 'smudge';
  pathname: string;
  /** Other keys git sent (ref, treeish, blob, can-delay...). */
  meta: Record<string, string>;
}

export interface FilterHandlers {
  /** Consumes the working-tree content, returns what git stores (the pointer). */
  clean(req: FilterRequest, content: AsyncIterable<Buffer>): Promise<Uint8Array>;
  /**
   * Consumes what git stored, returns the working-tree content as pieces. Checks that can fail should run
   * before the first piece is produced: once content flows, a failure can only abort the whole file.
   */
  smudge(req: FilterRequest, content: AsyncIterable<Buffer>): Promise<Iterable<Uint8Array> | AsyncIterable<Uint8Array>>;
  /** Told about each failed file (the adapter already answered git with status=error). */
  onError(req: FilterRequest, err: unknown): void;
}

/** One file's content as an async iterable that can be drained after a consumer stopped early. */
class Content implements AsyncIterable<Buffer> {
  private done = false;
  constructor(private readonly reader: PacketReader) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    while (!this.done) {
      const pkt = await this.reader.readPacket();
      if (pkt === null) throw new ProtocolError('git closed the pipe in the middle of a file');
      if (pkt === FLUSH) {
        this.done = true;
        return;
      }
      if (typeof pkt === 'symbol') throw new ProtocolError('unexpected special packet in file content');
      yield pkt;
    }
  }

  async drain(): Promise<void> {
    for await (const _ of this) {
      // discard
    }
  }
}

export async function serveFilterProcess(input: AsyncIterable<Buffer>, output: Writable, handlers: FilterHandlers): Promise<void> {
  const reader = new PacketReader(input);
  const writer = new PacketWriter(output);

  const hello = await reader.readTextList();
  if (!hello || hello[0] !== 'git-filter-client' || !hello.includes('version=2')) {
    throw new ProtocolError(`expected git-filter-client version=2, got ${JSON.stringify(hello)}`);
  }
  writer.list(['git-filter-server', 'version=2']);
  const offered = (await reader.readTextList()) ?? [];
  const ours = ['capability=clean', 'capability=smudge'].filter((c) => offered.includes(c));
  writer.list(ours);

  for (;;) {
    const header = await reader.readTextList();
    if (header === null) return; // git closed stdin: done
    const req = parseRequest(header);
    const content = new Content(reader);
    try {
      if (req.command === 'clean') {
        const out = await handlers.clean(req, content);
        await content.drain();
        writer.list(['status=success']);
        await writer.content(out);
        writer.flush();
        writer.flush(); // empty list: keep status=success
      } else {
        const pieces = await handlers.smudge(req, content);
        await content.drain();
        writer.list(['status=success']);
        try {
          for await (const piece of pieces) await writer.content(piece);
        } catch (err) {
          writer.flush();
          writer.list(['status=error']);
          handlers.onError(req, err);
          continue;
        }
        writer.flush();
        writer.flush();
      }
    } catch (err) {
      if (err instanceof ProtocolError) throw err;
      await content.drain();
      writer.list(['status=error']);
      handlers.onError(req, err);
    }
  }
}

function parseRequest(lines: string[]): FilterRequest {
  const meta: Record<string, string> = {};
  for (const l of lines) {
    const eq = l.indexOf('=');
    if (eq < 0) throw new ProtocolError(`malformed filter request line ${JSON.stringify(l)}`);
    meta[l.slice(0, eq)] = l.slice(eq + 1);
  }
  const command = meta.command;
  const pathname = meta.pathname;
  if ((command !== 'clean' && command !== 'smudge') || pathname === undefined) {
    throw new ProtocolError(`unsupported filter request ${JSON.stringify(lines)}`);
  }
  delete meta.command;
  delete meta.pathname;
  return { command, pathname, meta };
}
