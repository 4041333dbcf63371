// Owns how bytes move through the pipes to and from git (the filter process protocol): the pipes'
// capacity (set through the addon's setPipeSize) and reading them in large slices.

import { read, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { nativeSetPipeSize } from '../kernels/addon.js';

/** What Linux lets an unprivileged process ask for by default (/proc/sys/fs/pipe-max-size). */
const DEFAULT_PIPE_MAX = 1024 * 1024;

function pipeMaxSize(): number {
  try {
    return Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8').trim()) || DEFAULT_PIPE_MAX;
  } catch {
    return DEFAULT_PIPE_MAX;
  }
}

/**
 * Widens the pipes on `fds` to `bytes` (at most pipe-max-size). git moves a file through its filter in
 * 64 KiB packets; with a 64 KiB pipe each packet costs a context switch on both sides. Returns the sizes
 * now in effect, 0 for an fd that is not a pipe or where the addon or the OS cannot do it.
 */
export function widenPipes(fds: number[], bytes = 1024 * 1024): number[] {
  const set = nativeSetPipeSize();
  if (!set) return fds.map(() => 0);
  const size = Math.min(bytes, pipeMaxSize());
  return fds.map((fd) => set(fd, size));
}

const readFd = promisify(read);

/** Buffers readSlices cycles through: a slice stays valid while the reader asks for this many more. */
const SLICE_BUFFERS = 4;

/**
 * Yields what arrives on `fd` (a pipe, say git's end of the filter protocol) in slices of up to `bytes`,
 * until end of input. process.stdin reads a pipe 64 KiB at a time through a stream: 1 GiB took 1.1-1.8 s
 * to arrive that way on the 2-core VM, against 0.4 s in 1 MiB reads. Each read runs on the libuv pool,
 * so the JS thread stays free for other work while git is slow to write. The slices live in
 * SLICE_BUFFERS buffers used in turn, so a slice is overwritten SLICE_BUFFERS reads later: consumers
 * keep nothing past the next read without copying it (PacketReader's payloads are valid until the next
 * packet, and the filter's handlers copy what they keep). A fresh 1 MiB buffer per read cost `git add`
 * a page fault per 4 KiB and a garbage collection every few dozen MiB, as external memory piled up.
 */
export async function* readSlices(fd: number, bytes = 1024 * 1024): AsyncGenerator<Buffer> {
  const ring: Buffer[] = [];
  for (let turn = 0; ; turn = (turn + 1) % SLICE_BUFFERS) {
    const buffer = (ring[turn] ??= Buffer.allocUnsafeSlow(bytes));
    let n: number;
    try {
      n = (await readFd(fd, buffer, 0, bytes, null)).bytesRead;
    } catch (err) {
      // An fd some other part of the process set non-blocking: nothing there yet, so wait and ask again.
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        await sleep(1);
        continue;
      }
      throw err;
    }
    if (n === 0) return;
    yield n === bytes ? buffer : buffer.subarray(0, n);
  }
}
