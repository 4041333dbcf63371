// Shared helpers for the benchmark scripts: timing medians, tables, temp dirs and the git environment.
// Benchmarks are scripts, never tests: they print what they measured next to the baseline of the same run.

import { spawnSync, SpawnSyncOptions } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

/** An environment in which `git` finds this checkout's git-tensor and ignores the user's config. */
export function benchEnv(home: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: `${join(ROOT, 'bin')}:${process.env.PATH}`,
    HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'bench', GIT_AUTHOR_EMAIL: 'bench@example.com',
    GIT_COMMITTER_NAME: 'bench', GIT_COMMITTER_EMAIL: 'bench@example.com',
  };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(process.env.BENCH_TMP ?? tmpdir(), `git-tensor-${prefix}-`));
}

export function sh(cmd: string, args: string[], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr?.toString()}`);
  return r.stdout?.toString() ?? '';
}

/** Seconds taken by `fn`, run `runs` times with `before` (untimed) ahead of each; returns the median. */
export function medianSeconds(runs: number, fn: () => void, before: () => void = () => {}): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    before();
    const t = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return total;
}

export function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** Installs a Debian package when its command is missing; returns whether the command is there after. */
export function ensureDebian(cmd: string, pkg: string): boolean {
  if (has(cmd)) return true;
  process.stderr.write(`installing ${pkg} (apt-get) for the baseline...\n`);
  spawnSync('sh', ['-c', `(apt-get install -y -q ${pkg} || (apt-get update -q && apt-get install -y -q ${pkg})) >/dev/null 2>&1`]);
  return has(cmd);
}

export function printTable(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))];
  const widths = header.map((_, k) => Math.max(...cells.map((r) => String(r[k] ?? '').length)));
  const line = (r: (string | number)[]) => '| ' + r.map((c, k) => String(c).padEnd(widths[k]!)).join(' | ') + ' |';
  console.log(`\n${title}\n`);
  console.log(line(cells[0]!));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of cells.slice(1)) console.log(line(r));
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toFixed(3);
}

/** The number after `--<name>` on the command line, or `def` when the flag is absent. */
export function numberOption(name: string, def: number, args = process.argv.slice(2)): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
}

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;
