// Owns SHA-256 of whole objects during ingest, computed on a second core. Each byte of a tensor is hashed
// twice on the way in (once per chunk, once for the tensor's own id); the chunk hashes stay on the main
// thread, which needs them to deduplicate, and the object hashes run here in a worker thread, reading the
// chunk buffers in place from shared memory.

import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const open = new Map();
parentPort.on('message', (batch) => {
  for (const m of batch) {
    if (m.op === 'update') {
      let h = open.get(m.id);
      if (!h) open.set(m.id, (h = createHash('sha256')));
      h.update(new Uint8Array(m.buffer, m.offset, m.length));
    } else {
      const h = open.get(m.id) || createHash('sha256');
      open.delete(m.id);
      parentPort.postMessage({ id: m.id, digest: h.digest() });
    }
  }
});
`;

type Message = { op: 'update'; id: number; buffer: SharedArrayBuffer; offset: number; length: number } | { op: 'digest'; id: number };

/** Carves chunk buffers out of shared memory so the worker can read them without a copy. */
export class SharedSlab {
  private slab = new SharedArrayBuffer(0);
  private used = 0;

  constructor(private readonly slabBytes = 8 << 20) {}

  take(bytes: number): Buffer {
    if (this.used + bytes > this.slab.byteLength) {
      this.slab = new SharedArrayBuffer(Math.max(this.slabBytes, bytes));
      this.used = 0;
    }
    const view = Buffer.from(this.slab, this.used, bytes);
    this.used += bytes;
    return view;
  }
}

export class BackgroundHasher {
  private worker: Worker | undefined;
  private nextId = 1;
  private queue: Message[] = [];
  private queuedBytes = 0;
  private readonly pending = new Map<number, { resolve: (d: Buffer) => void; reject: (e: unknown) => void }>();

  /** Starts a hash; feed it with `update` using buffers from a SharedSlab. */
  begin(): number {
    return this.nextId++;
  }

  update(id: number, bytes: Buffer): void {
    if (!(bytes.buffer instanceof SharedArrayBuffer)) throw new TypeError('BackgroundHasher.update needs a SharedSlab buffer');
    this.queue.push({ op: 'update', id, buffer: bytes.buffer, offset: bytes.byteOffset, length: bytes.length });
    this.queuedBytes += bytes.length;
    if (this.queuedBytes >= 1 << 20) this.post();
  }

  digest(id: number): Promise<Buffer> {
    const result = new Promise<Buffer>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.queue.push({ op: 'digest', id });
    this.post();
    this.worker!.ref();
    return result;
  }

  /** Lets the process exit once nothing is pending. */
  close(): void {
    void this.worker?.terminate();
    this.worker = undefined;
  }

  private post(): void {
    if (!this.queue.length) return;
    this.start().postMessage(this.queue);
    this.queue = [];
    this.queuedBytes = 0;
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.on('message', (m: { id: number; digest: Uint8Array }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(Buffer.from(m.digest));
      if (this.pending.size === 0) w.unref();
    });
    w.on('error', (err) => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
    w.unref();
    this.worker = w;
    return w;
  }
}
