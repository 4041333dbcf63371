// Owns the probes file: a JSONL file committed with the model, one probe per line (spec: docs/probe.md).
// Pure and strict: every problem names `file:line`, unknown keys and mixed kinds are errors, ids are
// unique. Whether a `prompt` probe is causal or masked depends on the model, so it is decided when the
// probe is scored (src/probe/score.ts), not here.

import { createHash } from 'node:crypto';
import { ExitCode, GitTensorError } from '../errors/index.js';

/** A probe of a prompt's continuation (causal LM) or of its mask token (masked LM). */
export interface PromptProbe {
  kind: 'prompt';
  id: string;
  prompt: string;
  /** Candidate continuations / mask fillers; the first is the expected answer. May be empty (top-5 only). */
  targets: string[];
  guard: ProbeGuard;
  line: number;
}

/** Alternative statements; the model's belief is the most likely one (BEAR). The first is the true one. */
export interface ChoicesProbe {
  kind: 'choices';
  id: string;
  choices: string[];
  guard: ProbeGuard;
  line: number;
}

/** A reference text whose loss (mean negative log-likelihood per token) is reported. */
export interface TextProbe {
  kind: 'text';
  id: string;
  text: string;
  guard: ProbeGuard;
  line: number;
}

/** Kept for the merge guard (`git tensor verify`): parsed and validated, not used by scoring. */
export interface ProbeGuard {
  protect?: boolean;
  /** Largest allowed drop of the probe's value (natural-log units), >= 0. */
  maxDrop?: number;
}

export type Probe = PromptProbe | ChoicesProbe | TextProbe;

export interface ProbeSet {
  /** Where the probes came from, for messages. */
  source: string;
  /** SHA-256 of the file's bytes: part of the cache key. */
  hash: string;
  probes: Probe[];
}

const KEYS = new Set(['id', 'prompt', 'targets', 'choices', 'text', 'protect', 'max_drop']);
/** A probe file larger than this is refused before parsing (probes are for a few thousand lines). */
export const MAX_PROBES_BYTES = 16 * 1024 * 1024;

export class ProbeFileError extends GitTensorError {
  constructor(source: string, line: number | null, what: string) {
    super('E_PROBES', `${source}${line === null ? '' : `:${line}`}: ${what}`, {
      data: { file: source, line: line ?? undefined }, exitCode: ExitCode.badInput,
      hint: 'Fix the line; each line is one JSON object such as {"id": "capital", "prompt": "The capital of France is", "targets": [" Paris"]} (docs/probe.md).',
    });
  }
}

function nonEmptyStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string' && s.length > 0);
}

/** Parses a probes file; `source` names it in errors. */
export function parseProbes(bytes: Uint8Array | string, source: string): ProbeSet {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (buf.length > MAX_PROBES_BYTES) throw new ProbeFileError(source, null, `${buf.length} bytes, more than the ${MAX_PROBES_BYTES} a probes file may have`);
  const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  let decoded: string;
  try {
    decoded = text.decode(buf);
  } catch {
    throw new ProbeFileError(source, null, 'not UTF-8');
  }
  const probes: Probe[] = [];
  const seen = new Map<string, number>();
  const lines = decoded.split('\n');
  for (let k = 0; k < lines.length; k++) {
    const lineNo = k + 1;
    const raw = lines[k]!.replace(/\r$/, '');
    if (raw.trim() === '') continue;
    const fail = (what: string): never => {
      throw new ProbeFileError(source, lineNo, what);
    };
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (err) {
      fail(`not JSON (${(err as Error).message})`);
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) fail('expected a JSON object');
    const o = obj as Record<string, unknown>;
    for (const key of Object.keys(o)) if (!KEYS.has(key)) fail(`unknown key ${JSON.stringify(key)} (known: ${[...KEYS].join(', ')})`);
    if (typeof o.id !== 'string' || o.id.length === 0 || o.id.length > 200 || /[\x00-\x1f]/.test(o.id)) {
      fail('`id` must be a non-empty string of at most 200 characters without control characters');
    }
    const id = o.id as string;
    const before = seen.get(id);
    if (before !== undefined) fail(`duplicate id ${JSON.stringify(id)} (first on line ${before})`);
    seen.set(id, lineNo);

    const guard: ProbeGuard = {};
    if (o.protect !== undefined) {
      if (typeof o.protect !== 'boolean') fail('`protect` must be true or false');
      guard.protect = o.protect as boolean;
    }
    if (o.max_drop !== undefined) {
      if (typeof o.max_drop !== 'number' || !Number.isFinite(o.max_drop) || o.max_drop < 0) fail('`max_drop` must be a number >= 0');
      guard.maxDrop = o.max_drop as number;
    }

    const has = (key: string) => o[key] !== undefined;
    const kinds = ['prompt', 'choices', 'text'].filter(has);
    if (kinds.length !== 1) {
      fail(kinds.length ? `one of prompt, choices, text per probe, got ${kinds.join(' and ')}` : 'needs one of `prompt` (with `targets`), `choices` or `text`');
    }
    if (has('targets') && !has('prompt')) fail('`targets` goes with a `prompt`');
    if (has('prompt')) {
      if (typeof o.prompt !== 'string' || o.prompt.length === 0) fail('`prompt` must be a non-empty string');
      const targets = o.targets ?? [];
      if (!nonEmptyStrings(targets)) fail('`targets` must be a list of non-empty strings');
      const t = targets as string[];
      if (new Set(t).size !== t.length) fail('`targets` lists a target twice');
      probes.push({ kind: 'prompt', id, prompt: o.prompt as string, targets: t, guard, line: lineNo });
    } else if (has('choices')) {
      if (!nonEmptyStrings(o.choices) || o.choices.length < 2) fail('`choices` must be a list of at least two non-empty strings (the true statement first)');
      const c = o.choices as string[];
      if (new Set(c).size !== c.length) fail('`choices` lists a statement twice');
      probes.push({ kind: 'choices', id, choices: c, guard, line: lineNo });
    } else {
      if (typeof o.text !== 'string' || o.text.length === 0) fail('`text` must be a non-empty string');
      probes.push({ kind: 'text', id, text: o.text as string, guard, line: lineNo });
    }
  }
  if (!probes.length) throw new ProbeFileError(source, null, 'no probes (one JSON object per line)');
  return { source, hash: createHash('sha256').update(buf).digest('hex'), probes };
}
