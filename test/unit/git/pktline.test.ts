// pkt-line framing, from git's Documentation/technical/protocol-common.txt:
//
//   pkt-line     =  data-pkt / flush-pkt
//   data-pkt     =  pkt-len pkt-payload
//   pkt-len      =  4*(HEXDIG)
//   pkt-payload  =  (pkt-len - 4)*(OCTET)
//   flush-pkt    = "0000"
//
// plus "0001" (delim-pkt) and "0002" (response-end-pkt) of protocol v2; at most 65520 bytes a packet.
// The expected bytes below are written out by hand from that grammar, not produced by the code under test.

import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../../src/errors/index.js';
import { DELIM, FLUSH, MAX_PAYLOAD, PacketReader, PacketWriter, RESPONSE_END, type Packet } from '../../../src/git/pktline.js';

/** One data packet, framed independently of the code under test. */
function pkt(payload: string | Uint8Array): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, '0'), 'latin1'), body]);
}

const FLUSH_PKT = Buffer.from('0000');

/**
 * Feeds `wire` as chunks of the given sizes (cycled), as a pipe would deliver it. After `maxChunks`
 * chunks the rest comes in one piece, so a 1-byte pattern over a big wire stays fast.
 */
async function* chunked(wire: Buffer, sizes: readonly number[], maxChunks = Infinity): AsyncGenerator<Buffer> {
  let at = 0;
  let k = 0;
  while (at < wire.length) {
    const n = k >= maxChunks ? wire.length - at : Math.max(1, sizes[k % sizes.length]!);
    k++;
    yield wire.subarray(at, at + n);
    at += n;
  }
}

async function* split(wire: Buffer, cuts: readonly number[]): AsyncGenerator<Buffer> {
  let from = 0;
  for (const c of cuts) {
    yield wire.subarray(from, c);
    from = c;
  }
  yield wire.subarray(from);
}

/** A packet as a string: 'FLUSH', 'DELIM', 'RESPONSE_END', or the payload in hex (fast to compare). */
type Seen = string;

const data = (b: Uint8Array | string): Seen => `data:${Buffer.from(b).toString('hex')}`;

/** Every packet up to a clean end, copied (payloads are only valid until the next read). */
async function readAll(source: AsyncIterable<Buffer | string>): Promise<Seen[]> {
  const reader = new PacketReader(source);
  const out: Seen[] = [];
  for (;;) {
    const p = await reader.readPacket();
    if (p === null) return out;
    out.push(describe_(p));
  }
}

function describe_(p: Packet): Seen {
  if (p === FLUSH) return 'FLUSH';
  if (p === DELIM) return 'DELIM';
  if (p === RESPONSE_END) return 'RESPONSE_END';
  return data(p as Buffer);
}

async function rejection(p: Promise<unknown>): Promise<ProtocolError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw new Error(`expected a ProtocolError, got ${String(e)}`);
  }
  throw new Error('expected a ProtocolError, the promise resolved');
}

/** Deterministic bytes: every value 0..255 appears, no two neighbouring packets alike. */
function bytes(n: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** A PassThrough whose every byte is kept; `bytes()` ends it and returns them all. */
function capture() {
  const out = new PassThrough();
  const parts: Buffer[] = [];
  out.on('data', (c: Buffer) => parts.push(c));
  return {
    out,
    async bytes(): Promise<Buffer> {
      const ended = new Promise((resolve) => out.once('end', resolve));
      out.end();
      await ended;
      return Buffer.concat(parts);
    },
  };
}

// ---------------------------------------------------------------------------------------------------

const SMALL_WIRE = Buffer.concat([
  pkt('git-filter-client\n'),
  pkt('version=2\n'),
  FLUSH_PKT,
  pkt(''), // 0004: empty payload, allowed on the wire
  pkt(Buffer.from([0, 1, 2, 0x30, 0x30, 0x30, 0x30, 0xff])), // payload that looks like a length
  Buffer.from('0001'),
  pkt('x'),
  Buffer.from('0002'),
  FLUSH_PKT,
]);

const SMALL_EXPECTED: Seen[] = [
  data('git-filter-client\n'),
  data('version=2\n'),
  'FLUSH',
  data(''),
  data(Buffer.from([0, 1, 2, 0x30, 0x30, 0x30, 0x30, 0xff])),
  'DELIM',
  data('x'),
  'RESPONSE_END',
  'FLUSH',
];

describe('PacketReader', () => {
  it('reads data, flush, delim and response-end packets', async () => {
    expect(await readAll(split(SMALL_WIRE, []))).toEqual(SMALL_EXPECTED);
  });

  it('yields the same packets whichever byte boundary the input is split at', async () => {
    for (let cut = 0; cut <= SMALL_WIRE.length; cut++) {
      expect(await readAll(split(SMALL_WIRE, [cut])), `split at ${cut}`).toEqual(SMALL_EXPECTED);
    }
    expect(await readAll(chunked(SMALL_WIRE, [1]))).toEqual(SMALL_EXPECTED);
  });

  it('accepts string chunks as well as buffers', async () => {
    async function* text() {
      yield '000ahello\n';
      yield '00';
      yield '00';
    }
    expect(await readAll(text())).toEqual([data('hello\n'), 'FLUSH']);
  });

  it('reads the largest packet (65520 bytes, pkt-len fff0) in 1-byte and in random-size chunks', async () => {
    const big = bytes(MAX_PAYLOAD, 1);
    const wire = Buffer.concat([pkt(big), pkt('after\n'), FLUSH_PKT]);
    expect(wire.subarray(0, 4).toString()).toBe('fff0');
    const expected: Seen[] = [data(big), data('after\n'), 'FLUSH'];
    expect(await readAll(chunked(wire, [1]))).toEqual(expected);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 8 }), async (sizes) => {
        expect(await readAll(chunked(wire, sizes))).toEqual(expected);
      }),
      { seed: 7, numRuns: 40 },
    );
  });

  it('returns null at a clean end of input, and again on every later call', async () => {
    const reader = new PacketReader(split(Buffer.from('0000'), []));
    expect(await reader.readPacket()).toBe(FLUSH);
    expect(await reader.readPacket()).toBeNull();
    expect(await reader.readPacket()).toBeNull();
    expect(await new PacketReader(split(Buffer.alloc(0), [])).readPacket()).toBeNull();
  });

  it.each([
    ['non-hex digits', 'zzzz'],
    ['a space', ' 00a'],
    ['a sign', '-001'],
    ['hex with a 0x prefix', '0x0a'],
  ])('refuses an invalid length (%s)', async (_what, head) => {
    const e = await rejection(readAll(split(Buffer.from(head + 'payload'), [])));
    expect(e.code).toBe('E_PROTOCOL');
    expect(e.message).toContain(JSON.stringify(head));
  });

  it('refuses pkt-len 0003 (shorter than its own length field)', async () => {
    await rejection(readAll(split(Buffer.from('0003'), [])));
  });

  it('refuses packets longer than 65520 bytes before reading their payload', async () => {
    for (const head of ['fff1', 'ffff']) {
      // Only the 4 length bytes are there: the error must not wait for (or need) the payload.
      const e = await rejection(readAll(split(Buffer.from(head), [])));
      expect(e.message).toMatch(/65520/);
    }
  });

  it('refuses input that ends inside a packet (in the length or in the payload)', async () => {
    for (const wire of ['0', '00', '000', '000aabc', '0005', '000ahello\n00']) {
      await rejection(readAll(split(Buffer.from(wire), [])));
      await rejection(readAll(chunked(Buffer.from(wire), [1])));
    }
  });

  describe('readTextList', () => {
    it('returns key=value lines up to a flush, stripping exactly one trailing LF', async () => {
      const wire = Buffer.concat([pkt('a=1\n'), pkt('b=2'), pkt('c=3\n\n'), pkt(''), FLUSH_PKT, pkt('next\n'), FLUSH_PKT]);
      const reader = new PacketReader(chunked(wire, [3]));
      expect(await reader.readTextList()).toEqual(['a=1', 'b=2', 'c=3\n', '']);
      expect(await reader.readTextList()).toEqual(['next']);
      expect(await reader.readTextList()).toBeNull();
    });

    it('returns an empty list for a lone flush', async () => {
      expect(await new PacketReader(split(FLUSH_PKT, [])).readTextList()).toEqual([]);
    });

    it('refuses a list cut off before its flush, and special packets inside it', async () => {
      await rejection(new PacketReader(split(pkt('a=1\n'), [])).readTextList());
      await rejection(new PacketReader(split(Buffer.concat([pkt('a=1\n'), Buffer.from('0001')]), [])).readTextList());
      await rejection(new PacketReader(split(Buffer.from('0002'), [])).readTextList());
    });
  });

  describe('readUntilFlush', () => {
    it('yields payloads up to the flush and leaves the rest for the next read', async () => {
      const wire = Buffer.concat([pkt('ab'), pkt(''), pkt('cd'), FLUSH_PKT, pkt('rest\n'), FLUSH_PKT]);
      const reader = new PacketReader(chunked(wire, [1]));
      const got: Buffer[] = [];
      for await (const b of reader.readUntilFlush()) got.push(Buffer.from(b));
      expect(Buffer.concat(got).toString()).toBe('abcd');
      expect(await reader.readTextList()).toEqual(['rest']);
    });

    it('refuses content that ends before its flush, or holds a delim', async () => {
      const drain = async (wire: Buffer) => {
        for await (const _ of new PacketReader(split(wire, [])).readUntilFlush()) {
          // consume
        }
      };
      await rejection(drain(pkt('ab')));
      await rejection(drain(Buffer.concat([pkt('ab'), Buffer.from('0001'), FLUSH_PKT])));
    });
  });
});

// ---------------------------------------------------------------------------------------------------

describe('PacketWriter', () => {
  it('text adds one LF (and only when missing), flush writes 0000, list ends with a flush', async () => {
    const c = capture();
    const w = new PacketWriter(c.out);
    w.text('version=2');
    w.text('already\n');
    w.text('');
    w.flush();
    w.list(['capability=clean', 'capability=smudge']);
    w.list([]);
    expect((await c.bytes()).toString('latin1')).toBe(
      '000eversion=2\n' + '000calready\n' + '0005\n' + '0000' +
      '0015capability=clean\n' + '0016capability=smudge\n' + '0000' + '0000',
    );
  });

  it('text counts UTF-8 bytes, not characters', async () => {
    const c = capture();
    new PacketWriter(c.out).text('pathname=词.bin');
    expect((await c.bytes()).toString('utf8')).toBe('0015pathname=词.bin\n');
  });

  it('refuses a text line that does not fit one packet', () => {
    const w = new PacketWriter(new PassThrough());
    expect(() => w.text('x'.repeat(MAX_PAYLOAD))).toThrow(ProtocolError); // + LF: one byte too many
    expect(() => w.text('x'.repeat(MAX_PAYLOAD - 1))).not.toThrow();
  });

  it.each([
    [0, []],
    [1, [1]],
    [MAX_PAYLOAD - 1, [MAX_PAYLOAD - 1]],
    [MAX_PAYLOAD, [MAX_PAYLOAD]],
    [MAX_PAYLOAD + 1, [MAX_PAYLOAD, 1]],
    [3 * MAX_PAYLOAD + 5, [MAX_PAYLOAD, MAX_PAYLOAD, MAX_PAYLOAD, 5]],
  ])('content of %i bytes is sent as payloads of %j bytes, no flush', async (n, sizes) => {
    const content = bytes(n, n);
    const c = capture();
    await new PacketWriter(c.out).content(content);
    const wire = await c.bytes();
    let expected = Buffer.alloc(0);
    let at = 0;
    for (const s of sizes) {
      expected = Buffer.concat([expected, pkt(content.subarray(at, at + s))]);
      at += s;
    }
    expect(wire.equals(expected)).toBe(true);
  });

  it('content waits for the reader when the stream is full (back-pressure)', async () => {
    const out = new PassThrough({ highWaterMark: 1024 });
    const w = new PacketWriter(out);
    let done = false;
    const sending = w.content(bytes(300_000)).then(() => {
      done = true;
    });
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    let received = 0;
    out.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    await sending;
    expect(done).toBe(true);
    await w.drained();
    expect(received).toBe(300_000 + 4 * Math.ceil(300_000 / MAX_PAYLOAD));
  });
});

// ---------------------------------------------------------------------------------------------------

type Op =
  | { op: 'text'; line: string }
  | { op: 'flush' }
  | { op: 'list'; lines: string[] }
  | { op: 'content'; length: number; seed: number };

const lineArb = fc.string({ unit: 'binary', maxLength: 40 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('text' as const), line: lineArb }) },
  { weight: 2, arbitrary: fc.constant({ op: 'flush' as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('list' as const), lines: fc.array(lineArb, { maxLength: 4 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('content' as const),
      length: fc.oneof(fc.nat({ max: 300 }), fc.constantFrom(MAX_PAYLOAD - 1, MAX_PAYLOAD, MAX_PAYLOAD + 1, 2 * MAX_PAYLOAD + 17)),
      seed: fc.nat(),
    }),
  },
);

/** What a reader must see for the ops, from the grammar alone. */
function expectedPackets(ops: Op[]): Seen[] {
  const textPayload = (line: string) => data(line.endsWith('\n') ? line : line + '\n');
  const out: Seen[] = [];
  for (const o of ops) {
    if (o.op === 'text') out.push(textPayload(o.line));
    else if (o.op === 'flush') out.push('FLUSH');
    else if (o.op === 'list') out.push(...o.lines.map(textPayload), 'FLUSH');
    else {
      const content = bytes(o.length, o.seed);
      for (let at = 0; at < content.length; at += MAX_PAYLOAD) out.push(data(content.subarray(at, at + MAX_PAYLOAD)));
    }
  }
  return out;
}

describe('writer -> reader round trip (property)', () => {
  it('whatever is written is read back packet for packet, however the bytes are chunked', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { maxLength: 10 }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 100_000 })), { minLength: 1, maxLength: 6 }),
        async (ops, sizes) => {
          const c = capture();
          const w = new PacketWriter(c.out);
          for (const o of ops) {
            if (o.op === 'text') w.text(o.line);
            else if (o.op === 'flush') w.flush();
            else if (o.op === 'list') w.list(o.lines);
            else await w.content(bytes(o.length, o.seed));
          }
          const wire = await c.bytes();
          expect(await readAll(chunked(wire, sizes, 3000))).toEqual(expectedPackets(ops));
        },
      ),
      { seed: 1234, numRuns: 150 },
    );
  });
});
