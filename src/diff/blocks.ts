// Owns reading one version of a tensor as consecutive blocks of rows, so a comparison holds a block of
// each side rather than the whole tensor (docs/diff.md, "Memory"). The bytes come as pieces of any size
// (the store decodes a few MiB at a time); a block that falls inside one piece is a view of it, one that
// straddles pieces is copied once. A dtype conversion (a retyped tensor) happens per block.

import { ExitCode, GitTensorError } from '../errors/index.js';
import { toF32 } from '../kernels/index.js';

/** Consecutive byte ranges of one stream of pieces. */
export class ByteBlocks {
  private piece: Uint8Array = new Uint8Array(0);
  private at = 0;

  constructor(private readonly pieces: AsyncIterator<Uint8Array>, private readonly tensor: string) {}

  /** Bytes already in memory, handed out as views. */
  static of(bytes: Uint8Array, tensor: string): ByteBlocks {
    return new ByteBlocks((async function* () {
      yield bytes;
    })(), tensor);
  }

  /** The next `n` bytes. */
  async take(n: number): Promise<Uint8Array> {
    if (this.at === this.piece.length && n > 0) {
      // The last piece is used up: start on the next, so that a block that lies in it is a view too.
      const r = await this.pieces.next();
      if (!r.done) {
        this.piece = r.value;
        this.at = 0;
      }
    }
    if (this.piece.length - this.at >= n) return this.piece.subarray(this.at, (this.at += n));
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (this.at === this.piece.length) {
        const r = await this.pieces.next();
        if (r.done) throw this.sizeError(`ended ${n - got} bytes early`);
        this.piece = r.value;
        this.at = 0;
        continue;
      }
      const k = Math.min(n - got, this.piece.length - this.at);
      out.set(this.piece.subarray(this.at, this.at + k), got);
      got += k;
      this.at += k;
    }
    return out;
  }

  /** Everything not yet taken, in one buffer. */
  async rest(): Promise<Uint8Array> {
    const parts = [this.piece.subarray(this.at)];
    for (;;) {
      const r = await this.pieces.next();
      if (r.done) break;
      parts.push(r.value);
    }
    this.piece = new Uint8Array(0);
    this.at = 0;
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Reads what is left (a store stream checks the whole object at its end) and fails if anything was. */
  async end(): Promise<void> {
    let extra = this.piece.length - this.at;
    for (;;) {
      const r = await this.pieces.next();
      if (r.done) break;
      extra += r.value.length;
    }
    this.piece = new Uint8Array(0);
    this.at = 0;
    if (extra) throw this.sizeError(`has ${extra} bytes more than its shape`);
  }

  private sizeError(what: string): GitTensorError {
    return new GitTensorError('E_DIFF_TENSOR_SIZE', `tensor ${this.tensor}: its data ${what}`, {
      data: { tensor: this.tensor }, exitCode: ExitCode.corrupt, hint: 'Run `git tensor fsck`.',
    });
  }
}

/** A tensor's rows from the start, `count` at a time: raw bytes, or f32 bytes of a converted dtype. */
export interface RowReader {
  next(count: number): Promise<Uint8Array>;
  end(): Promise<void>;
}

export function byteRows(blocks: ByteBlocks, rowBytes: number): RowReader {
  return { next: (count) => blocks.take(count * rowBytes), end: () => blocks.end() };
}

/** Rows of a float tensor of `dtype` widened to f32 (exact; F64 rounds), block by block. */
export function f32Rows(blocks: ByteBlocks, rowBytes: number, dtype: string): RowReader {
  return {
    next: async (count) => {
      const v = await toF32(await blocks.take(count * rowBytes), dtype);
      return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    },
    end: () => blocks.end(),
  };
}
