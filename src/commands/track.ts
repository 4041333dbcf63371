// Owns `git tensor track` / `untrack`: the .gitattributes lines that route files through git-tensor.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors/index.js';
import { repoPaths } from '../git/exec.js';
import { writeFileAtomic } from '../store/atomic.js';

export const ATTRIBUTES = 'filter=tensor diff=tensor merge=tensor -text';

export interface TrackOptions {
  patterns: string[];
  cwd?: string;
}

export interface TrackResult {
  added: string[];
  already: string[];
  removed: string[];
  attributesFile: string;
}

function attributesPath(cwd?: string): string {
  const { topLevel } = repoPaths(cwd);
  if (!topLevel) throw new UsageError('track needs a working tree; this repository is bare');
  return join(topLevel, '.gitattributes');
}

function readLines(file: string): string[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  return text === '' ? [] : text.replace(/\n$/, '').split('\n');
}

/** The pattern of a .gitattributes line, or undefined for comments and blank lines. */
function patternOf(line: string): string | undefined {
  const t = line.trim();
  if (!t || t.startsWith('#')) return undefined;
  return t.split(/\s+/)[0];
}

function isTensorLine(line: string): boolean {
  return /(^|\s)filter=tensor(\s|$)/.test(line);
}

/** Patterns go in verbatim; spaces are escaped the way gitattributes reads them. */
function quotePattern(p: string): string {
  if (/\s/.test(p)) throw new UsageError(`pattern ${JSON.stringify(p)} contains white space`, 'Use [[:space:]] in the pattern instead.');
  return p;
}

export async function track(opts: TrackOptions): Promise<TrackResult> {
  const file = attributesPath(opts.cwd);
  const lines = readLines(file);
  const result: TrackResult = { added: [], already: [], removed: [], attributesFile: file };
  for (const p of opts.patterns) {
    const pattern = quotePattern(p);
    if (lines.some((l) => patternOf(l) === pattern && isTensorLine(l))) {
      result.already.push(pattern);
      continue;
    }
    lines.push(`${pattern} ${ATTRIBUTES}`);
    result.added.push(pattern);
  }
  if (result.added.length) writeFileAtomic(file, lines.join('\n') + '\n');
  return result;
}

export async function untrack(opts: TrackOptions): Promise<TrackResult> {
  const file = attributesPath(opts.cwd);
  const lines = readLines(file);
  const result: TrackResult = { added: [], already: [], removed: [], attributesFile: file };
  const wanted = new Set(opts.patterns);
  const kept = lines.filter((l) => {
    const p = patternOf(l);
    if (p !== undefined && wanted.has(p) && isTensorLine(l)) {
      result.removed.push(p);
      return false;
    }
    return true;
  });
  if (result.removed.length) writeFileAtomic(file, kept.length ? kept.join('\n') + '\n' : '');
  return result;
}
