// Owns the probe results cache: git notes under refs/notes/tensor-probes, so results travel with
// `git push`/`git fetch` of that ref like any notes. A result is keyed by what determines it: the model
// files' blob ids (CommitVersion.contentKey), the probes file's SHA-256, and the engine (the built-in
// engine's version, or the runner command line) with the --generate length. The key text is hashed
// into a git object id (written as a blob) and the note annotating that id holds the results JSON.
//
// Writes build the new notes commit in a temporary index and move the ref with a compare-and-swap
// `git update-ref`, retrying when another writer moved it first: concurrent writers never lose each
// other's notes, and a killed command leaves the ref as it was.

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { git, gitRaw } from '../git/exec.js';
import { readSmallObjects } from '../git/tree.js';
import { GitTensorError } from '../errors/index.js';
import type { ProbeSet } from '../probe/probes.js';
import { validateResults, type VersionResults } from '../probe/result.js';

export const NOTES_REF = 'refs/notes/tensor-probes';

export interface CacheKey {
  checkpoint: string;
  probes: string;
  engine: string;
}

function keyText(k: CacheKey): string {
  return `git-tensor probe results v1\ncheckpoint ${k.checkpoint}\nprobes ${k.probes}\nengine ${k.engine}\n`;
}

/** The git blob id of the key text, computed here (no git process per lookup) in the repository's hash. */
function keyOid(k: CacheKey, format: 'sha1' | 'sha256'): string {
  const body = Buffer.from(keyText(k), 'utf8');
  return createHash(format).update(`blob ${body.length}\0`).update(body).digest('hex');
}

export class ProbeCache {
  private notes: Map<string, string> | undefined;
  private readonly format: 'sha1' | 'sha256';

  constructor(private readonly cwd: string, private readonly tmpParent: string) {
    this.format = git(['rev-parse', '--show-object-format'], { cwd }) === 'sha256' ? 'sha256' : 'sha1';
  }

  /** annotated id -> note blob id, read once per command. */
  private entries(): Map<string, string> {
    if (this.notes) return this.notes;
    this.notes = new Map();
    const r = gitRaw(['ls-tree', '-r', '-z', NOTES_REF], { cwd: this.cwd, okCodes: [128] });
    if (r.status === 0) {
      for (const rec of r.stdout.toString('utf8').split('\0').filter(Boolean)) {
        const tab = rec.indexOf('\t');
        this.notes.set(rec.slice(tab + 1).replace(/\//g, ''), rec.slice(0, tab).split(' ')[2]!);
      }
    }
    return this.notes;
  }

  /** Cached results for each key (undefined where none, or where the note does not hold valid results). */
  async getMany(keys: CacheKey[], probes: ProbeSet): Promise<(VersionResults | undefined)[]> {
    const entries = this.entries();
    if (!entries.size) return keys.map(() => undefined);
    const oids = keys.map((k) => entries.get(keyOid(k, this.format)));
    const blobs = await readSmallObjects(oids.filter((o): o is string => !!o), this.cwd);
    return oids.map((o, i) => {
      if (!o || !blobs.has(o)) return undefined;
      try {
        const note = JSON.parse(blobs.get(o)!.toString('utf8')) as { key?: CacheKey; results?: unknown };
        if (JSON.stringify(note.key) !== JSON.stringify(keys[i])) return undefined;
        return validateResults(note.results, probes, `note ${o.slice(0, 10)} in ${NOTES_REF}`);
      } catch (err) {
        // A damaged or hand-edited note is a cache miss: the version is computed again and the note replaced.
        if (err instanceof SyntaxError || err instanceof GitTensorError) return undefined;
        throw err;
      }
    });
  }

  /** Adds notes for `items` in one notes commit, atomically. */
  put(items: { key: CacheKey; label: string; results: VersionResults }[]): void {
    if (!items.length) return;
    const cwd = this.cwd;
    const adds = items.map(({ key, label, results }) => ({
      // The key object is written too, so git's own notes commands see an existing annotated object.
      path: git(['hash-object', '-w', '--stdin'], { cwd, input: keyText(key) }),
      blob: git(['hash-object', '-w', '--stdin'], { cwd, input: JSON.stringify({ key, label, results }) + '\n' }),
    }));
    const tmp = mkdtempSync(join(this.tmpParent, 'probe-notes-'));
    try {
      const env = { ...process.env, GIT_INDEX_FILE: join(tmp, 'index') };
      for (let attempt = 0; ; attempt++) {
        const old = gitRaw(['rev-parse', '--verify', '--quiet', NOTES_REF], { cwd, okCodes: [1] }).stdout.toString('utf8').trim();
        gitRaw(old ? ['read-tree', `${old}^{tree}`] : ['read-tree', '--empty'], { cwd, env });
        const existing = new Set(gitRaw(['ls-files', '-z'], { cwd, env }).stdout.toString('utf8').split('\0').filter(Boolean));
        // A note written with git's fan-out (ab/cdef...) for the same id is replaced, not doubled.
        const stale = adds.flatMap((a) => [...existing].filter((p) => p !== a.path && p.replace(/\//g, '') === a.path));
        if (stale.length) gitRaw(['update-index', '--force-remove', '-z', '--stdin'], { cwd, env, input: stale.join('\0') + '\0' });
        gitRaw(['update-index', '--add', '--index-info'], { cwd, env, input: adds.map((a) => `100644 ${a.blob}\t${a.path}\n`).join('') });
        const tree = git(['write-tree'], { cwd, env });
        const commit = git(['commit-tree', tree, ...(old ? ['-p', old] : []), '-m', `git-tensor probe: ${items.map((i) => i.label).join(', ')}`], { cwd });
        const zero = '0'.repeat(old.length || commit.length);
        const r = gitRaw(['update-ref', '-m', 'git-tensor probe', NOTES_REF, commit, old || zero], { cwd, okCodes: [1, 128] });
        if (r.status === 0) break;
        if (attempt >= 9) throw new GitTensorError('E_PROBE_CACHE', `cannot update ${NOTES_REF}: ${r.stderr.trim()}`, { hint: 'Another command keeps moving it; run the command again.' });
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    this.notes = undefined;
  }
}
