// Owns progress lines in git's own style on stderr, for tensor pack transfers:
//
//   Uploading tensor packs:  40% (12/30), 1.20 GiB | 80.00 MiB/s
//   Uploading tensor packs: 100% (30/30), 3.00 GiB | 81.20 MiB/s, done.
//
// Like git's progress.c, a line is redrawn in place with CR, at most a few times a second, and only when
// progress was asked for (`option progress` from git, a terminal on stderr, never with --quiet).

export interface ProgressSink {
  write(text: string): unknown;
}

/** The units git prints sizes in (binary prefixes, two decimals). */
export function humanBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  if (n < 1024) return `${n} ${n === 1 ? 'byte' : 'bytes'}`;
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(2)} ${units[u]}`;
}

/** One line of progress text (no CR/LF): what `Progress` prints, exposed for tests. */
export function formatProgress(title: string, done: number, total: number, bytes: number | undefined, rate: number | undefined): string {
  const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
  let line = `${title}: ${String(pct).padStart(3)}% (${done}/${total})`;
  if (bytes !== undefined) {
    line += `, ${humanBytes(bytes)}`;
    if (rate !== undefined) line += ` | ${humanBytes(Math.round(rate))}/s`;
  }
  return line;
}

export class Progress {
  private done = 0;
  private bytes = 0;
  private readonly started = Date.now();
  private lastDraw = 0;
  private lastPct = -1;
  private lastLength = 0;
  private finished = false;

  /**
   * `enabled` false makes every call a no-op, so callers never test for quiet mode themselves.
   * `minIntervalMs` throttles redraws that do not change the percentage.
   */
  constructor(
    private readonly title: string,
    private total: number,
    private readonly opts: { enabled: boolean; sink?: ProgressSink; showBytes?: boolean; minIntervalMs?: number } = { enabled: false },
  ) {}

  get enabled(): boolean {
    return this.opts.enabled;
  }

  /** Sets the absolute count and byte total reached so far. */
  update(done: number, bytes = this.bytes): void {
    this.done = done;
    this.bytes = bytes;
    this.draw(false);
  }

  addBytes(n: number): void {
    this.bytes += n;
    this.draw(false);
  }

  setTotal(total: number): void {
    this.total = total;
  }

  /** Prints the final line with ", done." (once). */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.done = Math.max(this.done, this.total);
    this.draw(true);
  }

  private draw(final: boolean): void {
    if (!this.opts.enabled) return;
    const now = Date.now();
    const pct = this.total > 0 ? Math.floor((100 * this.done) / this.total) : 100;
    if (!final && pct === this.lastPct && now - this.lastDraw < (this.opts.minIntervalMs ?? 250)) return;
    this.lastDraw = now;
    this.lastPct = pct;
    const seconds = (now - this.started) / 1000;
    const rate = seconds > 0.5 ? this.bytes / seconds : undefined;
    const showBytes = this.opts.showBytes ?? true;
    let line = formatProgress(this.title, this.done, this.total, showBytes ? this.bytes : undefined, showBytes ? rate : undefined);
    if (final) line += ', done.';
    // Blank out what is left of a longer previous line, as git does.
    const pad = this.lastLength > line.length ? ' '.repeat(this.lastLength - line.length) : '';
    this.lastLength = line.length;
    (this.opts.sink ?? process.stderr).write(`${line}${pad}${final ? '\n' : '\r'}`);
  }
}
