// Owns git's pkt-line framing, used by the long-running filter process and the remote helper.
//
// From git's Documentation/technical/protocol-common.txt:
//   pkt-line     =  data-pkt / flush-pkt
//   data-pkt     =  pkt-len pkt-payload
//   pkt-len      =  4*(HEXDIG)
//   pkt-payload  =  (pkt-len - 4)*(OCTET)
//   flush-pkt    = "0000"
// "0001" (delim-pkt) and "0002" (response-end-pkt) are special packets of protocol v2. A pkt-len of
// 0004 (empty payload) is allowed on the wire but must not be sent. The largest packet is 65520 bytes,
// so a payload holds at most 65516 bytes.

import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { ProtocolError } from '../errors/index.js';

export const MAX_PAYLOAD = 65516;
export const FLUSH = Symbol('flush-pkt');
export const DELIM = Symbol('delim-pkt');
export const RESPONSE_END = Symbol('response-end-pkt');
export type Packet = Buffer | typeof FLUSH | typeof DELIM | typeof RESPONSE_END;

/**
 * Reads pkt-lines from an async source of byte chunks (a Readable stream) without copying payloads that
 * lie inside one chunk. Usage:
 *
 *   const reader = new PacketReader(process.stdin);
 *   const lines = await reader.readTextList();       // key=value lines up to a flush
 *   for await (const bytes of reader.readUntilFlush()) hash.update(bytes);
 */
export class PacketReader {
  private readonly source: AsyncIterator<Buffer>;
  private chunk: Buffer = Buffer.alloc(0);
  private pos = 0;
  private ended = false;

  constructor(source: AsyncIterable<Buffer | string>) {
    this.source = (async function* () {
      for await (const c of source) yield typeof c === 'string' ? Buffer.from(c) : c;
    })();
  }

  /** Returns null at a clean end of input (between packets). */
  async readPacket(): Promise<Packet | null> {
    const head = await this.take(4, true);
    if (head === null) return null;
    const text = head.toString('latin1');
    if (!/^[0-9a-f]{4}$/.test(text)) throw new ProtocolError(`invalid pkt-line length ${JSON.stringify(text)}`);
    const len = parseInt(text, 16);
    if (len === 0) return FLUSH;
    if (len === 1) return DELIM;
    if (len === 2) return RESPONSE_END;
    if (len < 4) throw new ProtocolError(`invalid pkt-line length ${text}`);
    if (len > MAX_PAYLOAD + 4) throw new ProtocolError(`pkt-line of ${len} bytes exceeds the 65520-byte limit`);
    return (await this.take(len - 4, false)) as Buffer;
  }

  /** Reads text packets up to a flush; strips one trailing LF from each. */
  async readTextList(): Promise<string[] | null> {
    const lines: string[] = [];
    for (;;) {
      const pkt = await this.readPacket();
      if (pkt === null) {
        if (lines.length === 0) return null;
        throw new ProtocolError('input ended inside a pkt-line list');
      }
      if (pkt === FLUSH) return lines;
      if (typeof pkt === 'symbol') throw new ProtocolError('unexpected special packet in a text list');
      const s = pkt.toString('utf8');
      lines.push(s.endsWith('\n') ? s.slice(0, -1) : s);
    }
  }

  /** Yields packet payloads up to the next flush. Each yielded buffer is valid until the next iteration. */
  async *readUntilFlush(): AsyncGenerator<Buffer> {
    for (;;) {
      const pkt = await this.readPacket();
      if (pkt === null) throw new ProtocolError('input ended before the flush-pkt that ends the content');
      if (pkt === FLUSH) return;
      if (typeof pkt === 'symbol') throw new ProtocolError('unexpected special packet in content');
      yield pkt;
    }
  }

  private async take(n: number, allowEnd: boolean): Promise<Buffer | null> {
    if (this.chunk.length - this.pos >= n) {
      const out = this.chunk.subarray(this.pos, this.pos + n);
      this.pos += n;
      return out;
    }
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      if (this.pos >= this.chunk.length) {
        if (!(await this.fill())) {
          if (allowEnd && have === 0) return null;
          throw new ProtocolError('input ended in the middle of a pkt-line');
        }
      }
      const k = Math.min(n - have, this.chunk.length - this.pos);
      parts.push(this.chunk.subarray(this.pos, this.pos + k));
      this.pos += k;
      have += k;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.source.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    this.chunk = next.value;
    this.pos = 0;
    return true;
  }
}

function lengthHeader(payloadLength: number): Buffer {
  return Buffer.from((payloadLength + 4).toString(16).padStart(4, '0'), 'latin1');
}

const FLUSH_BYTES = Buffer.from('0000', 'latin1');

/**
 * Writes pkt-lines to a stream, in order. Text and flush packets are small and never wait; `content`
 * honours back-pressure so a multi-gigabyte smudge never queues more than the stream's buffer. Payloads
 * are written by reference: callers must not reuse a buffer after passing it.
 */
export class PacketWriter {
  constructor(private readonly out: Writable) {}

  text(line: string): void {
    const payload = Buffer.from(line.endsWith('\n') ? line : line + '\n', 'utf8');
    if (payload.length > MAX_PAYLOAD) throw new ProtocolError('pkt-line text too long');
    this.out.write(Buffer.concat([lengthHeader(payload.length), payload]));
  }

  flush(): void {
    this.out.write(FLUSH_BYTES);
  }

  /** Writes `lines` then a flush. */
  list(lines: string[]): void {
    for (const l of lines) this.text(l);
    this.flush();
  }

  /** Writes arbitrary bytes as a sequence of maximal data packets (no flush). */
  async content(data: Uint8Array): Promise<void> {
    let ok = true;
    this.out.cork();
    for (let off = 0; off < data.length; off += MAX_PAYLOAD) {
      const end = Math.min(off + MAX_PAYLOAD, data.length);
      this.out.write(lengthHeader(end - off));
      ok = this.out.write(data.subarray(off, end));
    }
    this.out.uncork();
    if (!ok) await once(this.out, 'drain');
  }

  /** Resolves once everything written so far has been handed to the operating system. */
  async drained(): Promise<void> {
    if (this.out.writableNeedDrain) await once(this.out, 'drain');
  }
}
