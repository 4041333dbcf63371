// Owns how command results reach the terminal: text lines for people, JSON for programs.

import type { Printable } from '../commands/printable.js';

export function print(result: Printable, opts: { json: boolean; quiet: boolean }): void {
  if (result.exitCode !== undefined) process.exitCode = result.exitCode;
  if (opts.json) process.stdout.write(JSON.stringify(result.data, null, 2) + '\n');
  else if (!opts.quiet && result.text.length) (result.stream === 'stderr' ? process.stderr : process.stdout).write(result.text.join('\n') + '\n');
}
