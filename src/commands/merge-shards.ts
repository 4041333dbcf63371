// Owns what the merge driver says about sharded checkpoints. git merges each shard file on its own (and
// the index as text), so a tensor that one side moved to another shard while the other side modified it
// meets the driver as "modified by one side, deleted by the other": a conflict, never a silent loss, but
// one whose reason is elsewhere. For such conflicts this module reads the deleting side's model from git
// (HEAD for ours; for theirs the commit git merges, cherry-picks or rebases, each used only when its blob
// at the path is the one git handed the driver) and names the shard the tensor went to, with what to do.
// docs/merge.md, "Sharded checkpoints".

import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { isShardIndexPath, parseShardIndex } from '../format/shard-index.js';
import { looksLikePointer, parsePointer } from '../format/pointer.js';
import { GitTensorError } from '../errors/index.js';
import { gitRaw } from '../git/exec.js';
import { gitSubcommand, invokingGitArgv } from '../git/invoker.js';
import type { MergeOutcome } from '../merge/checkpoint-merge.js';

/**
 * Commits that may be theirs: git names the merged heads in GITHEAD_<id> variables (git merge); a
 * cherry-pick's commits are on its command line; a rebase's current pick is the last line of
 * rebase-merge/done. MERGE_HEAD and CHERRY_PICK_HEAD are written only after the drivers ran.
 */
function theirsCandidates(): string[] {
  const out = Object.keys(process.env).flatMap((k) => (/^GITHEAD_[0-9a-f]{40,64}$/.test(k) ? [k.slice(8)] : []));
  const argv = invokingGitArgv() ?? [];
  if (gitSubcommand(argv) === 'cherry-pick') out.push(...argv.filter((a) => !a.startsWith('-') && a !== 'git' && a !== 'cherry-pick'));
  const gitDir = gitRaw(['rev-parse', '--git-dir'], { okCodes: [128] }).stdout.toString('utf8').trim();
  const done = gitDir && existsSync(join(gitDir, 'rebase-merge', 'done')) ? readFileSync(join(gitDir, 'rebase-merge', 'done'), 'utf8').trim().split('\n') : [];
  const pick = /^(?:pick|p|edit|e|reword|r|squash|s|fixup|f)\s+([0-9a-f]{7,64})\b/.exec(done[done.length - 1] ?? '');
  if (pick) out.push(pick[1]!);
  return out;
}

export interface MovedTensor {
  tensor: string;
  /** The side that moved it away from this file. */
  side: 'ours' | 'theirs';
  /** The shard that side's index maps it to now. */
  to: string;
  /** That shard holds it with the base's values (a move, nothing more). */
  unchanged: boolean;
}

/** The commit whose blob at `path` has exactly `bytes`, among `refs`. */
function commitWith(refs: string[], path: string, bytes: Buffer): string | null {
  const oid = gitRaw(['hash-object', '-t', 'blob', '--no-filters', '--stdin'], { input: bytes }).stdout.toString('utf8').trim();
  for (const ref of refs) {
    const r = gitRaw(['rev-parse', '--verify', '--quiet', `${ref}:${path}`], { okCodes: [1, 128] });
    if (r.status === 0 && r.stdout.toString('utf8').trim() === oid) return ref;
  }
  return null;
}

function blobAt(spec: string): Buffer | null {
  const r = gitRaw(['cat-file', 'blob', spec], { okCodes: [128] });
  return r.status === 0 ? r.stdout : null;
}

/** Where `rev`'s shard index in the folder of `path` maps each of `names`, when it maps them to another file. */
function elsewhere(rev: string, path: string, names: string[]): Map<string, { shard: string; id?: string }> {
  const out = new Map<string, { shard: string; id?: string }>();
  const dir = posix.dirname(path);
  const listed = gitRaw(['ls-tree', '--name-only', '-z', rev, ...(dir === '.' ? [] : ['--', `${dir}/`])], { okCodes: [128] }).stdout.toString('utf8').split('\0');
  for (const indexPath of listed.filter((p) => isShardIndexPath(p) && posix.dirname(p) === dir)) {
    const text = blobAt(`${rev}:${indexPath}`);
    if (!text) continue;
    let index;
    try {
      index = parseShardIndex(text.toString('utf8'), `${rev}:${indexPath}`);
    } catch (err) {
      if (err instanceof GitTensorError) continue;
      throw err;
    }
    if (!index.shards.includes(posix.basename(path)) && !names.some((n) => index.weightMap.has(n))) continue;
    for (const name of names) {
      const shard = index.weightMap.get(name);
      if (!shard || shard === posix.basename(path)) continue;
      const pointer = blobAt(`${rev}:${dir === '.' ? shard : `${dir}/${shard}`}`);
      let id: string | undefined;
      if (pointer && looksLikePointer(pointer)) {
        const p = parsePointer(pointer.toString('utf8'));
        if (p.kind === 'safetensors') id = p.tensors.find((t) => t.name === name)?.id;
      }
      out.set(name, { shard, id });
    }
  }
  return out;
}

/**
 * The conflicting tensors of `outcome` that one side deleted from this shard because its model keeps
 * them in another shard. Read before the driver overwrites `oursFile`.
 */
export function movedAway(opts: { path: string; oursFile: string; theirsFile: string; outcome: MergeOutcome; baseIds: Map<string, string> }): MovedTensor[] {
  const conflicts = opts.outcome.tensors.filter((t) => t.outcome === 'conflict' && t.reason && /deleted by (ours|theirs)/.test(t.reason));
  if (!conflicts.length) return [];
  const out: MovedTensor[] = [];
  for (const side of ['ours', 'theirs'] as const) {
    const names = conflicts.filter((t) => t.reason!.includes(`deleted by ${side}`)).map((t) => t.name);
    if (!names.length) continue;
    const rev = commitWith(side === 'ours' ? ['HEAD'] : theirsCandidates(), opts.path, readFileSync(side === 'ours' ? opts.oursFile : opts.theirsFile));
    if (!rev) continue;
    for (const [tensor, at] of elsewhere(rev, opts.path, names)) {
      out.push({ tensor, side, to: at.shard, unchanged: at.id !== undefined && at.id === opts.baseIds.get(tensor) });
    }
  }
  return out;
}

/** Lines for the driver's summary: where each tensor went, and the next step. */
export function movedLines(path: string, moved: MovedTensor[]): string[] {
  if (!moved.length) return [];
  const lines = moved.map((m) => `  ${m.tensor}: ${m.side} moved it to ${m.to}${m.unchanged ? ' without changing it' : ' and changed it there'}; the other side's change to it is only in ${path}`);
  const mover = moved[0]!.side;
  lines.push(`hint: git merges shard files one by one, so a change does not follow a tensor to another shard. The changed version stays in ${path} ` +
    `until it is resolved: carry it to ${moved[0]!.to} (load the merged model and save it again with save_pretrained), then take the move with ` +
    `\`git tensor resolve ${path} --strategy ${mover}\`; or give up with \`git merge --abort\`.`);
  return lines;
}
