// Owns how command results reach the terminal: text lines for people, JSON for programs.

export interface Printable {
  /** What --json prints. */
  data: unknown;
  /** What a person reads. */
  text: string[];
  /** Non-zero when the command found problems it reports rather than throws (fsck, conflicts). */
  exitCode?: number;
  /** Where the text goes; git's drivers keep stdout for git. */
  stream?: 'stdout' | 'stderr';
}

export function print(result: Printable, opts: { json: boolean; quiet: boolean }): void {
  if (result.exitCode !== undefined) process.exitCode = result.exitCode;
  if (opts.json) process.stdout.write(JSON.stringify(result.data, null, 2) + '\n');
  else if (!opts.quiet && result.text.length) (result.stream === 'stderr' ? process.stderr : process.stdout).write(result.text.join('\n') + '\n');
}

export { formatBytes } from '../format/units.js';

/** Left-aligned columns, right-aligning those named in `right`. */
export function table(rows: string[][], right: number[] = []): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, k) => (widths[k] = Math.max(widths[k] ?? 0, [...c].length)));
  return rows.map((r) => r.map((c, k) => (right.includes(k) ? c.padStart(widths[k]!) : k === r.length - 1 ? c : c.padEnd(widths[k]!))).join('  '));
}
