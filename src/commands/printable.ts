// Owns what a command handler returns: its result as data (what --json prints) and as text lines for
// people, laid out with table(). cli/output.ts decides where each goes, so handlers stay callable from tests.

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

/** Left-aligned columns, right-aligning those named in `right`. */
export function table(rows: string[][], right: number[] = []): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, k) => (widths[k] = Math.max(widths[k] ?? 0, [...c].length)));
  return rows.map((r) => r.map((c, k) => (right.includes(k) ? c.padStart(widths[k]!) : k === r.length - 1 ? c : c.padEnd(widths[k]!))).join('  '));
}
