// Owns `git tensor probe`, the behaviour section of `git tensor diff --probes` and `git tensor log
// --probes`: finding the probes file and the versions, taking results from the notes cache or computing
// them (built-in engine or the external runner), and rendering them. docs/probe.md.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { Printable } from './printable.js';
import { GitTensorError, UsageError } from '../errors/index.js';
import { gitRaw } from '../git/exec.js';
import { compareResults, type BehaviourDiff } from '../probe/compare.js';
import { parseProbes, type ProbeSet } from '../probe/probes.js';
import { renderBehaviour, renderProbeLog, renderResults, firstFlips, firstLearned, type LogRow } from '../probe/report.js';
import { answerOf, valueOf, type VersionResults } from '../probe/result.js';
import { renderTimelineHtml, type TimelineInput } from '../diff/report-timeline.js';
import { openRepo, type RepoContext } from './context.js';
import { ENGINE_VERSION } from '../model/version.js';
import { LazyFetcher } from '../remote/lazy-fetch.js';
import { ProbeCache, type CacheKey } from './probe-cache.js';
import { loadProbeSettings, type ProbeSettings, runnerCommand } from './probe-config.js';
import { commitVersion, commitVersionsOf, diskVersion, MODEL_FILES, modelFiles, type ModelVersion } from './probe-source.js';
import { runExternal } from './probe-runner.js';
import { adapterContentKey } from './fold.js';

/** Everything a probe run shares across versions. */
export class ProbeSession {
  /** null only for `--path` outside a repository: no cache, no runner settings. */
  readonly repo: RepoContext | null;
  readonly topLevel: string;
  readonly probes: ProbeSet;
  readonly probesFile: string;
  readonly command: string | undefined;
  readonly engine: string;
  readonly generate: number;
  readonly lazy: LazyFetcher | null;
  private readonly cache: ProbeCache | null;
  private readonly settings: ProbeSettings;
  /** Versions computed (not read from the cache) by this session. */
  computed = 0;

  /** PEFT adapters applied to every version (`--adapter`): base + Σ ΔW. */
  readonly adapters: string[];

  constructor(opts: { probes?: string; generate?: number; outsideRepo?: boolean; adapters?: string[] }) {
    let repo: RepoContext | null = null;
    try {
      repo = openRepo();
    } catch (err) {
      if (!(opts.outsideRepo && err instanceof GitTensorError && err.code === 'E_NOT_A_REPO')) throw err;
    }
    this.repo = repo;
    this.topLevel = repo ? repo.topLevel : process.cwd();
    if (!this.topLevel) throw new UsageError('git tensor probe needs a working tree (the probes file is read from it)', 'Run it inside a checkout.');
    const settings: ProbeSettings = repo ? loadProbeSettings(this.topLevel) : { trusted: false };
    const given = opts.probes || undefined;
    const file = given ? resolve(given) : settings.file ? join(this.topLevel, settings.file) : undefined;
    if (!file) throw new UsageError('no probes file', 'Pass --probes <file>, or name one in .gittensor: [probe] file = probes.jsonl (docs/probe.md).');
    if (!existsSync(file)) throw new UsageError(`probes file ${given ?? settings.file} does not exist`, 'Pass --probes <file> with one JSON probe per line (docs/probe.md).');
    this.probesFile = file;
    const shown = relative(process.cwd(), file) || file;
    this.probes = parseProbes(readFileSync(file), isAbsolute(shown) ? file : shown);
    // The command names the engine in cache keys; it must be trusted only to run (cached results need not).
    this.command = settings.command;
    this.settings = settings;
    this.adapters = opts.adapters ?? [];
    if (this.adapters.length && this.command !== undefined) throw new UsageError('--adapter runs on the built-in engine, but .gittensor names an external runner', 'Fold the adapter first (`git tensor fold <adapter> --output <file>`) and probe that file with --path.');
    // Results with adapters are cached under the adapters' content, never under the base's alone.
    this.engine = `${this.command !== undefined ? `command ${this.command}` : ENGINE_VERSION} generate=${opts.generate ?? 0}${this.adapters.length ? ` adapters=${adapterContentKey(this.adapters)}` : ''}`;
    this.generate = opts.generate ?? 0;
    this.lazy = repo && new LazyFetcher(repo);
    this.cache = repo && new ProbeCache(this.topLevel, repo.commonDir);
  }

  key(v: ModelVersion): CacheKey | null {
    return v.type === 'commit' ? { checkpoint: v.contentKey, probes: this.probes.hash, engine: this.engine } : null;
  }

  /** Results for each version, from the cache where possible; each version is computed at most once. */
  async results(versions: ModelVersion[]): Promise<{ results: VersionResults; cached: boolean }[]> {
    const keys = versions.map((v) => this.key(v));
    const hits = !this.cache ? [] : await this.cache.getMany(keys.filter((k): k is CacheKey => k !== null), this.probes);
    let h = 0;
    const out: { results: VersionResults; cached: boolean }[] = [];
    const done = new Map<string, VersionResults>();
    for (const [i, v] of versions.entries()) {
      const key = keys[i];
      const hit = key ? hits[h++] : undefined;
      if (hit) {
        out.push({ results: hit, cached: true });
        continue;
      }
      const id = key ? JSON.stringify(key) : undefined;
      if (id && done.has(id)) {
        out.push({ results: done.get(id)!, cached: true });
        continue;
      }
      const results = await this.compute(v);
      this.computed++;
      if (key && this.cache) {
        this.cache.put([{ key, label: v.label, results }]);
        done.set(id!, results);
      }
      out.push({ results, cached: false });
    }
    return out;
  }

  private async compute(v: ModelVersion): Promise<VersionResults> {
    if (this.command !== undefined) {
      return runExternal({ command: runnerCommand(this.settings)!, version: v, probes: this.probes, probesFile: this.probesFile, generate: this.generate, repo: this.repo!, lazy: this.lazy!, cwd: this.topLevel });
    }
    const { loadModel } = await import('../model/index.js');
    const { scoreProbes } = await import('../probe/score.js');
    const files = await modelFiles(v, this.repo, this.lazy, this.topLevel);
    if (this.adapters.length) {
      const { adaptedTensorSource, readAdapter } = await import('../model/adapter.js');
      const adapters = [];
      for (const a of this.adapters) adapters.push(await readAdapter(a));
      files.tensors = await adaptedTensorSource(files.tensors, adapters);
      files.label = `${files.label} + ${this.adapters.join(' + ')}`;
    }
    const model = await loadModel(files);
    try {
      return await scoreProbes(model, this.probes, { label: v.label, generate: this.generate });
    } finally {
      model.dispose();
    }
  }

  close(): void {
    this.lazy?.close();
    this.repo?.store.close();
  }
}

// ---- `git tensor probe` --------------------------------------------------------------------------

export interface ProbeOptions {
  revs: string[];
  path?: string;
  probes?: string;
  generate?: number;
  /** PEFT adapters applied to each version. */
  adapters?: string[];
}

export async function probe(opts: ProbeOptions): Promise<Printable> {
  if (opts.generate !== undefined && (!Number.isInteger(opts.generate) || opts.generate < 0)) throw new UsageError(`--generate ${opts.generate}: expected a whole number >= 0`);
  if (opts.path && opts.revs.length) throw new UsageError('give revisions or --path, not both', 'Use `git tensor probe <rev>...` or `git tensor probe --path <checkpoint>`.');
  const s = new ProbeSession({ ...opts, outsideRepo: !!opts.path });
  try {
    const versions: ModelVersion[] = opts.path ? [diskVersion(opts.path)] : [];
    for (const rev of opts.path ? [] : opts.revs.length ? opts.revs : ['HEAD']) versions.push(await commitVersion(rev, s.topLevel));
    const results = await s.results(versions);
    const text: string[] = [];
    results.forEach((r, i) => {
      if (i) text.push('');
      text.push(...renderResults(versions[i]!.label + s.adapters.map((x) => ` + ${x}`).join(''), r.results, r.cached ? 'cached' : undefined));
    });
    return {
      data: {
        version: 1, probes: s.probes.source, probes_sha256: s.probes.hash, engine: s.engine,
        versions: versions.map((v, i) => ({ label: v.label, commit: v.type === 'commit' ? v.commit : null, cached: results[i]!.cached, ...results[i]!.results })),
      },
      text,
    };
  } finally {
    s.close();
  }
}

// ---- behaviour section of a diff -----------------------------------------------------------------

export interface BehaviourOptions {
  /** Old and new side: a revision, or null for the working tree's checkpoint. */
  old: string;
  new: string | null;
  /** The checkpoint (repository-relative) when a revision holds several. */
  path?: string;
  probes?: string;
  top?: number;
}

export async function behaviourDiff(opts: BehaviourOptions): Promise<{ data: BehaviourDiff & { old: string; new: string }; text: string[] }> {
  const s = new ProbeSession({ probes: opts.probes });
  try {
    const a = await commitVersion(opts.old, s.topLevel, opts.path);
    const b: ModelVersion = opts.new !== null ? await commitVersion(opts.new, s.topLevel, opts.path ?? a.path) : diskVersion(join(s.topLevel, a.path));
    const [ra, rb] = await s.results([a, b]);
    const d = compareResults(ra!.results, rb!.results);
    return { data: { old: a.label, new: b.label, ...d }, text: renderBehaviour(d, { top: opts.top }) };
  } finally {
    s.close();
  }
}

// ---- `git tensor log --probes` -------------------------------------------------------------------

export interface ProbeLogOptions {
  /** A revision range (default HEAD): `A..B`, `B`, ... as git log reads it. */
  range?: string;
  path?: string;
  probes?: string;
  maxCount?: number;
  /** Also write the HTML timeline to this file. */
  html?: string;
}

export async function logProbes(opts: ProbeLogOptions): Promise<Printable> {
  const s = new ProbeSession({ probes: opts.probes });
  try {
    const range = opts.range ?? 'HEAD';
    const tip = range.includes('..') ? range.split(/\.\.\.?/)[1] || 'HEAD' : range;
    const tipVersion = await commitVersion(tip, s.topLevel, opts.path);
    // Commits that changed the checkpoint, its shards, config or tokenizer, oldest first.
    const dir = tipVersion.path.includes('/') ? tipVersion.path.slice(0, tipVersion.path.lastIndexOf('/') + 1) : '';
    const names = new Set([...MODEL_FILES, ...tipVersion.blobs.keys(), tipVersion.path.slice(dir.length)]);
    const pathspec = [...names].map((n) => `:(top,literal)${dir}${n}`);
    // --parents: git rewrites each commit's parents to its nearest ancestors that touch the pathspec,
    // so a flip is judged against what the commit grew from, on histories with merges too.
    const r = gitRaw(['log', '--format=%H%x00%h%x00%s%x00%P', '--parents', '--topo-order', '--reverse', ...(opts.maxCount ? [`--max-count=${opts.maxCount}`] : []), range, '--', ...pathspec], { cwd: s.topLevel, okCodes: [128] });
    if (r.status !== 0) throw new UsageError(`cannot read the history of ${range}: ${r.stderr.trim()}`, 'Check the range with `git log --oneline <range>`.');
    const commits = r.stdout.toString('utf8').split('\n').filter(Boolean).map((l) => l.split('\0') as [string, string, string, string]);
    const found = await commitVersionsOf(commits.map(([hash, short]) => ({ commit: hash, rev: short })), tipVersion.path, s.topLevel);
    const versions: ModelVersion[] = found;
    const bySha = new Map(commits.map(([hash, short, subject, parents]) => [hash, { hash, short, subject, parent: parents.split(' ')[0] || null }]));
    const rows = found.map((v) => bySha.get(v.commit)!);
    const results = await s.results(versions);
    const shortOf = new Map(rows.map((row) => [row.hash, row.short]));
    const logRows: LogRow[] = rows.map((row, i) => ({
      short: row.short, subject: row.subject, parent: row.parent ? (shortOf.get(row.parent) ?? null) : null, results: results[i]!.results,
    }));
    const flips = firstFlips(logRows);
    const text = logRows.length ? renderProbeLog(logRows) : [`no commit in ${range} changes ${tipVersion.path}`];
    if (opts.html) {
      writeFileSync(opts.html, renderTimelineHtml(timelineOf(`${tipVersion.path}: probes along ${range}`, logRows)));
      text.push('', `wrote ${opts.html}`);
    }
    return {
      data: {
        version: 1, checkpoint: tipVersion.path, probes: s.probes.source, engine: s.engine,
        commits: rows.map((row, i) => ({ commit: row.hash, subject: row.subject, cached: results[i]!.cached, probes: results[i]!.results.probes })),
        first_flips: Object.fromEntries([...flips].map(([id, f]) => [id, { commit: rows.find((r) => r.short === f.short)!.hash, from: f.from, to: f.to }])),
        learned: Object.fromEntries([...firstLearned(logRows)].map(([id, l]) => [id, { commit: rows.find((r) => r.short === l.short)!.hash, from: l.from, to: l.to }])),
        computed: s.computed,
      },
      text,
    };
  } finally {
    s.close();
  }
}

/** The timeline's series: each probe's value per commit, and the commits where its answer changed. */
function timelineOf(title: string, rows: LogRow[]): TimelineInput {
  const ids = rows[0]?.results.probes.map((r) => r.id) ?? [];
  const index = new Map(rows.map((r, i) => [r.short, i]));
  const parentOf = rows.map((r, i) => (r.parent === undefined ? i - 1 : r.parent === null ? -1 : (index.get(r.parent) ?? -1)));
  return {
    title,
    commits: rows.map((r) => ({ short: r.short, subject: r.subject })),
    series: ids.map((id) => {
      const per = rows.map((r) => r.results.probes.find((p) => p.id === id));
      const first = per.find(Boolean);
      const label = !first ? '' : first.kind === 'text' ? 'text loss (nats/token)' : first.kind === 'choices' ? 'margin of the first choice (nats)'
        : first.targets.length ? `logprob ${JSON.stringify(first.targets[0]!.text)}` : 'logprob of the top token';
      const answers = per.map((p) => (p ? answerOf(p) : null));
      return {
        id, label, values: per.map((p) => (p ? valueOf(p) : null)),
        flips: answers.flatMap((a, i) => {
          const before = parentOf[i]! >= 0 ? answers[parentOf[i]!] : null;
          return a !== null && before !== null && before !== undefined && a !== before ? [i] : [];
        }),
      };
    }),
  };
}
