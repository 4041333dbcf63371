// Owns a long-lived `git cat-file --batch` for reading many small blobs (pointers) one at a time while a
// git command runs, e.g. the index version of each file the filter process cleans.

import { ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

export class BlobReader {
  private child: ChildProcessByStdio<Writable, Readable, null> | undefined;
  private buffered: Buffer = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  private ended = false;

  constructor(private readonly cwd?: string) {}

  /** The blob named by `spec` (e.g. `:path` for the index version), or null if there is none. */
  async read(spec: string, maxBytes = 64 << 20): Promise<Buffer | null> {
    if (/[\n\0]/.test(spec)) return null;
    const child = this.start();
    child.stdin.write(spec + '\n');
    const head = await this.line();
    if (head === null || head.endsWith(' missing') || head.endsWith(' ambiguous')) return null;
    const size = Number(head.split(' ')[2]);
    const body = await this.take(size + 1);
    if (body === null) return null;
    return size <= maxBytes ? body.subarray(0, size) : null;
  }

  close(): void {
    this.child?.stdin.end();
    this.child = undefined;
  }

  private start(): ChildProcessByStdio<Writable, Readable, null> {
    if (this.child) return this.child;
    const child = spawn('git', ['cat-file', '--batch'], { cwd: this.cwd, stdio: ['pipe', 'pipe', 'ignore'] });
    child.stdout.on('data', (c: Buffer) => {
      this.buffered = this.buffered.length ? Buffer.concat([this.buffered, c]) : c;
      this.waiting?.();
    });
    child.stdout.on('end', () => {
      this.ended = true;
      this.waiting?.();
    });
    child.on('error', () => {
      this.ended = true;
      this.waiting?.();
    });
    this.child = child;
    return child;
  }

  private async line(): Promise<string | null> {
    for (;;) {
      const nl = this.buffered.indexOf(10);
      if (nl >= 0) {
        const text = this.buffered.toString('utf8', 0, nl);
        this.buffered = this.buffered.subarray(nl + 1);
        return text;
      }
      if (this.ended) return null;
      await new Promise<void>((r) => (this.waiting = r));
    }
  }

  private async take(n: number): Promise<Buffer | null> {
    while (this.buffered.length < n) {
      if (this.ended) return null;
      await new Promise<void>((r) => (this.waiting = r));
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }
}
