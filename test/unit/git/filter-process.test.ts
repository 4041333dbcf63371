// The long-running filter protocol as git speaks it. From git's Documentation/gitattributes.txt,
// "Long Running Filter Process":
//
//   In the handshake, the welcome message sent by Git is "git-filter-client", only version 2 is
//   supported, and the supported capabilities are "clean", "smudge", and "delay".
//
//   Afterwards Git sends a list of "key=value" pairs terminated with a flush packet. [...] Right after
//   the flush packet Git sends the content split in zero or more pkt-line packets and a flush packet to
//   terminate content. [...] Also note that the "value" of a "key=value" pair can contain the "="
//   character whereas the key would never contain that character.
//
//   The filter is expected to respond with a list of "key=value" pairs terminated with a flush packet.
//   If the filter does not experience problems then the list must contain a "success" status. Right
//   after these packets the filter is expected to send the content in zero or more pkt-line packets and
//   a flush packet at the end. Finally, a second list of "key=value" pairs terminated with a flush
//   packet is expected. The filter can change the status in the second list or keep the status as is
//   with an empty list. Please note that the empty list must be terminated with a flush packet
//   regardless.
//
//     packet:          git< status=success
//     packet:          git< 0000
//     packet:          git< SMUDGED_CONTENT
//     packet:          git< 0000
//     packet:          git< 0000  # empty list, keep "status=success" unchanged!
//
//   In case the filter cannot or does not want to process the content, it is expected to respond with
//   an "error" status.
//
//     packet:          git< status=error
//     packet:          git< 0000
//
//   If the filter experiences an error during processing, then it can send the status "error" after
//   the content was (partially or completely) sent.
//
//     packet:          git< status=success
//     packet:          git< 0000
//     packet:          git< HALF_WRITTEN_ERRONEOUS_CONTENT
//     packet:          git< 0000
//     packet:          git< status=error
//     packet:          git< 0000
//
// Git's side is written below as literal bytes; our side is checked byte for byte.

import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../../src/errors/index.js';
import { serveFilterProcess, type FilterHandlers, type FilterRequest } from '../../../src/git/filter-process.js';

/** What git writes first: welcome, versions, flush, then every capability it knows, flush. */
const GIT_HANDSHAKE =
  '0016git-filter-client\n' + '000eversion=2\n' + '0000' +
  '0015capability=clean\n' + '0016capability=smudge\n' + '0015capability=delay\n' + '0000';

/** What we must answer: our welcome and version, then the capabilities we take. */
const OUR_HANDSHAKE =
  '0016git-filter-server\n' + '000eversion=2\n' + '0000' +
  '0015capability=clean\n' + '0016capability=smudge\n' + '0000';

const STATUS_SUCCESS = '0013status=success\n';
const STATUS_ERROR = '0011status=error\n';
const FLUSH = '0000';

/** One data packet, framed by hand from the pkt-line grammar. */
function pkt(payload: string | Buffer): string {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  return (body.length + 4).toString(16).padStart(4, '0') + body.toString('latin1');
}

/** A request as git sends it: key=value lines, flush, content packets, flush. */
function request(lines: string[], contentPackets: string[]): string {
  return lines.map((l) => pkt(l + '\n')).join('') + FLUSH + contentPackets.map((c) => pkt(c)).join('') + FLUSH;
}

/** Delivers the wire in pieces of `size` bytes, the way a pipe may cut it. */
async function* pipe(wire: string, size = 7): AsyncGenerator<Buffer> {
  const bytes = Buffer.from(wire, 'latin1');
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

interface Served {
  output: string;
  requests: { req: FilterRequest; content: string }[];
  errors: { pathname: string; message: string }[];
}

/**
 * Runs the server on `wire` until git "closes stdin" (the end of the wire) and returns every byte it
 * answered. `handlers` may override clean and smudge; by default clean answers "pointer:<content>" and
 * smudge answers "file:<content>".
 */
async function serve(wire: string, handlers: Partial<Pick<FilterHandlers, 'clean' | 'smudge'>> = {}, chunk = 7): Promise<Served> {
  const out = new PassThrough();
  const parts: Buffer[] = [];
  out.on('data', (c: Buffer) => parts.push(c));
  const requests: Served['requests'] = [];
  const errors: Served['errors'] = [];
  const collect = async (req: FilterRequest, content: AsyncIterable<Buffer>) => {
    const got: Buffer[] = [];
    for await (const b of content) got.push(Buffer.from(b));
    const text = Buffer.concat(got).toString('latin1');
    requests.push({ req, content: text });
    return text;
  };
  await serveFilterProcess(pipe(wire, chunk), out, {
    clean: handlers.clean ?? (async (req, content) => Buffer.from(`pointer:${await collect(req, content)}`, 'latin1')),
    smudge: handlers.smudge ?? (async (req, content) => [Buffer.from(`file:${await collect(req, content)}`, 'latin1')]),
    onError: (req, err) => errors.push({ pathname: req.pathname, message: (err as Error).message }),
  });
  const ended = new Promise((resolve) => out.once('end', resolve));
  out.end();
  await ended;
  return { output: Buffer.concat(parts).toString('latin1'), requests, errors };
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

const CLEAN_A = request(['command=clean', 'pathname=model.bin'], ['first ', 'second ', 'third']);
const SMUDGE_B = request(['command=smudge', 'pathname=dir/b.bin', 'ref=refs/heads/feature=x', 'blob=0123abcd'], ['stored']);

describe('handshake', () => {
  it('answers git-filter-server, version=2 and the capabilities git offered that we have', async () => {
    const { output } = await serve(GIT_HANDSHAKE);
    expect(output).toBe(OUR_HANDSHAKE);
  });

  it('takes only what git offers (a git without smudge gets only clean)', async () => {
    const wire = '0016git-filter-client\n' + '000eversion=2\n' + '0000' + '0015capability=clean\n' + '0000';
    expect((await serve(wire)).output).toBe('0016git-filter-server\n' + '000eversion=2\n' + '0000' + '0015capability=clean\n' + '0000');
  });

  it('accepts a git that offers several versions, 2 among them', async () => {
    const wire = '0016git-filter-client\n' + '000eversion=2\n' + '000fversion=42\n' + '0000' + '0015capability=clean\n' + '0000';
    expect((await serve(wire)).output).toMatch(/^0016git-filter-server\n000eversion=2\n0000/);
  });

  it.each([
    ['a server welcome', '0016git-filter-server\n' + '000eversion=2\n' + '0000'],
    ['version 3 only', '0016git-filter-client\n' + '000eversion=3\n' + '0000'],
    ['no version', '0016git-filter-client\n' + '0000'],
    ['a single-shot filter invocation (raw content)', 'hello world, not pkt-lines'],
  ])('refuses %s with a ProtocolError and writes nothing', async (_what, wire) => {
    const out = new PassThrough();
    const parts: Buffer[] = [];
    out.on('data', (c: Buffer) => parts.push(c));
    const handlers: FilterHandlers = {
      clean: async () => Buffer.alloc(0),
      smudge: async () => [],
      onError: () => undefined,
    };
    const e = await rejection(serveFilterProcess(pipe(wire), out, handlers));
    expect(e.code).toBe('E_PROTOCOL');
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(parts).length).toBe(0);
  });

  it('refuses an input that ends before the handshake', async () => {
    await rejection(serve(''));
  });
});

describe('requests', () => {
  it('cleans content split over packets and smudges with metadata, then stops when git closes the pipe', async () => {
    const { output, requests, errors } = await serve(GIT_HANDSHAKE + CLEAN_A + SMUDGE_B);
    expect(requests).toEqual([
      { req: { command: 'clean', pathname: 'model.bin', meta: {} }, content: 'first second third' },
      // The value of a key=value pair may itself contain "=".
      { req: { command: 'smudge', pathname: 'dir/b.bin', meta: { ref: 'refs/heads/feature=x', blob: '0123abcd' } }, content: 'stored' },
    ]);
    expect(errors).toEqual([]);
    expect(output).toBe(
      OUR_HANDSHAKE +
      STATUS_SUCCESS + FLUSH + pkt('pointer:first second third') + FLUSH + FLUSH +
      STATUS_SUCCESS + FLUSH + pkt('file:stored') + FLUSH + FLUSH,
    );
  });

  it('the same bytes give the same answer however the pipe cuts them', async () => {
    const wire = GIT_HANDSHAKE + CLEAN_A + SMUDGE_B;
    const expected = (await serve(wire, {}, wire.length)).output;
    for (const size of [1, 2, 3, 5, 13, 64]) expect((await serve(wire, {}, size)).output, `pieces of ${size}`).toBe(expected);
  });

  it('answers empty content with success, an empty content section and an empty list', async () => {
    const wire = GIT_HANDSHAKE + request(['command=clean', 'pathname=empty'], []) + request(['command=smudge', 'pathname=empty'], []);
    const { output, requests } = await serve(wire, {
      clean: async (req, content) => {
        for await (const _ of content) throw new Error('no content expected');
        return Buffer.alloc(0);
      },
      smudge: async () => [Buffer.alloc(0), Buffer.alloc(0)],
    });
    expect(requests).toEqual([]);
    expect(output).toBe(OUR_HANDSHAKE + STATUS_SUCCESS + FLUSH + FLUSH + FLUSH + STATUS_SUCCESS + FLUSH + FLUSH + FLUSH);
  });

  it('sends large smudge output in packets of at most 65516 bytes, in order', async () => {
    const big = Buffer.alloc(70_000, 0x61);
    big[0] = 0x62;
    big[69_999] = 0x63;
    const { output } = await serve(GIT_HANDSHAKE + request(['command=smudge', 'pathname=big'], ['x']), {
      smudge: async (_req, content) => {
        for await (const _ of content) {
          // consume
        }
        return [Buffer.from('head'), big];
      },
    });
    const body = pkt('head') + pkt(big.subarray(0, 65516)) + pkt(big.subarray(65516));
    expect(body.slice(8, 12)).toBe('fff0');
    expect(output).toBe(OUR_HANDSHAKE + STATUS_SUCCESS + FLUSH + body + FLUSH + FLUSH);
  });
});

describe('errors stay with their file', () => {
  const NEXT = request(['command=clean', 'pathname=next.bin'], ['next-content']);
  const NEXT_ANSWER = STATUS_SUCCESS + FLUSH + pkt('pointer:next-content') + FLUSH + FLUSH;
  const FAILING = request(['command=clean', 'pathname=bad.bin'], ['p1', 'p2', 'p3']);

  it.each([
    ['before reading any content', 0],
    ['after one of three packets', 1],
    ['after all the content', 3],
  ])('a clean handler that throws %s gets status=error; the rest of that file is drained and the next file is served', async (_what, readBeforeThrow) => {
    const cleaned: string[] = [];
    const { output, errors } = await serve(GIT_HANDSHAKE + FAILING + NEXT, {
      clean: async (req, content) => {
        if (req.pathname === 'bad.bin') {
          let n = 0;
          if (readBeforeThrow > 0) {
            for await (const _ of content) if (++n === readBeforeThrow) break;
          }
          throw new Error('not a checkpoint');
        }
        const got: Buffer[] = [];
        for await (const b of content) got.push(Buffer.from(b));
        cleaned.push(Buffer.concat(got).toString());
        return Buffer.from(`pointer:${Buffer.concat(got).toString()}`);
      },
    });
    expect(output).toBe(OUR_HANDSHAKE + STATUS_ERROR + FLUSH + NEXT_ANSWER);
    expect(errors).toEqual([{ pathname: 'bad.bin', message: 'not a checkpoint' }]);
    expect(cleaned).toEqual(['next-content']);
  });

  it('a smudge handler that throws before producing content gets status=error only', async () => {
    const wire = GIT_HANDSHAKE + request(['command=smudge', 'pathname=missing.bin'], ['pointer']) + NEXT;
    const { output, errors } = await serve(wire, {
      smudge: async () => {
        throw new Error('objects missing');
      },
    });
    expect(output).toBe(OUR_HANDSHAKE + STATUS_ERROR + FLUSH + NEXT_ANSWER);
    expect(errors).toEqual([{ pathname: 'missing.bin', message: 'objects missing' }]);
  });

  it('smudge pieces that fail midway: the content sent so far, a flush, then a status=error list', async () => {
    const wire = GIT_HANDSHAKE + request(['command=smudge', 'pathname=torn.bin'], ['pointer']) + NEXT;
    const { output, errors } = await serve(wire, {
      smudge: async (_req, content) => {
        for await (const _ of content) {
          // consume
        }
        return (function* () {
          yield Buffer.from('part-1');
          yield Buffer.from('part-2');
          throw new Error('object corrupt');
        })();
      },
    });
    expect(output).toBe(
      OUR_HANDSHAKE +
      STATUS_SUCCESS + FLUSH + pkt('part-1') + pkt('part-2') + FLUSH + STATUS_ERROR + FLUSH +
      NEXT_ANSWER,
    );
    expect(errors).toEqual([{ pathname: 'torn.bin', message: 'object corrupt' }]);
  });
});

describe('protocol violations end the process', () => {
  it.each([
    ['a request line without "="', GIT_HANDSHAKE + pkt('command\n') + FLUSH],
    ['a request without a pathname', GIT_HANDSHAKE + pkt('command=clean\n') + FLUSH + FLUSH],
    ['an unknown command', GIT_HANDSHAKE + pkt('command=list_available_blobs\n') + FLUSH],
    ['a pipe closed in the middle of the content', GIT_HANDSHAKE + pkt('command=clean\n') + pkt('pathname=a\n') + FLUSH + pkt('partial')],
    ['a pipe closed in the middle of a packet', GIT_HANDSHAKE + pkt('command=clean\n') + pkt('pathname=a\n') + FLUSH + '0010abc'],
  ])('%s -> ProtocolError', async (_what, wire) => {
    const e = await rejection(serve(wire));
    expect(e.code).toBe('E_PROTOCOL');
  });
});
