// Owns the probe results schema (docs/probe.md, "Results"): what the built-in scorer computes, what an
// external runner must print, what the notes cache stores, and the strict validation of all three.
// Log-probabilities are natural logs. `dist` keeps the top-k log-probabilities at each probe position so
// that KL and logit-diff mining can be computed from cached results without running the model again.

import { ExitCode, GitTensorError } from '../errors/index.js';
import type { Probe, ProbeSet } from './probes.js';

export const RESULTS_SCHEMA = 1;

/** Top-k next-token log-probabilities at one position: [token text, logprob] pairs, most likely first. */
export type TopK = [string, number][];

export interface TargetResult {
  text: string;
  /** Tokens the target scored (continuation tokens of a causal LM; 1 for a masked LM). */
  tokens: number;
  logprob: number;
  prob: number;
  /** 1 = the most likely token; only for single-token targets. */
  rank?: number;
  /** Every token of the target is the argmax at its position (lm-eval-harness's is_greedy). */
  greedy?: boolean;
}

export interface PromptResult {
  id: string;
  kind: 'causal' | 'masked';
  targets: TargetResult[];
  /**
   * The best of several targets; with one target, the target when the model produces it (greedy) and
   * else the most likely next/mask token; with no targets, the most likely next/mask token.
   */
  answer: string;
  /** The first target is the answer (null without targets). */
  correct: boolean | null;
  top5: { token: string; logprob: number }[];
  /** Greedy continuation (`--generate N`, causal LMs only). */
  generated?: string;
  /** Top-k at the probe position (after the prompt / at the mask). */
  dist?: TopK[];
}

export interface ChoicesResult {
  id: string;
  kind: 'choices';
  choices: { text: string; logprob: number }[];
  /** Index of the most likely statement. */
  chosen: number;
  /** logprob(chosen) - logprob(runner-up), >= 0. */
  margin: number;
  correct: boolean;
}

export interface TextResult {
  id: string;
  kind: 'text';
  /** Tokens scored. */
  tokens: number;
  /** Mean negative log-likelihood per token (nats). */
  loss: number;
  /** Top-k at the first positions of the text (at most 256). */
  dist?: TopK[];
}

export type ProbeResult = PromptResult | ChoicesResult | TextResult;

export interface VersionResults {
  schema: number;
  probes: ProbeResult[];
}

/** Top-k entries kept per position, and text positions kept, in results the built-in scorer writes. */
export const DIST_K = 10;
export const TEXT_DIST_POSITIONS = 256;

export class ResultsError extends GitTensorError {
  constructor(source: string, what: string, hint?: string) {
    super('E_PROBE_RESULTS', `${source}: ${what}`, {
      data: { source }, exitCode: ExitCode.badInput,
      hint: hint ?? 'The output must be one JSON object {"schema": 1, "probes": [...]} as described in docs/probe.md ("Results").',
    });
  }
}

/** The single number a probe is followed by in `log --probes`: the first target's logprob, the margin of the true statement, or the text loss. */
export function valueOf(r: ProbeResult): number | null {
  if (r.kind === 'text') return r.loss;
  if (r.kind === 'choices') {
    const others = r.choices.slice(1).map((c) => c.logprob);
    return r.choices[0]!.logprob - Math.max(...others);
  }
  if (r.targets.length) return r.targets[0]!.logprob;
  return r.top5[0]?.logprob ?? null;
}

/** What a flip compares: the chosen target/statement/token; null for texts. */
export function answerOf(r: ProbeResult): string | null {
  if (r.kind === 'text') return null;
  if (r.kind === 'choices') return r.choices[r.chosen]!.text;
  return r.answer;
}

/**
 * Validates results (from an external runner or the notes cache) against the probes they claim to
 * answer: every probe exactly once, kinds and targets as in the file, numbers finite and in range.
 */
export function validateResults(value: unknown, probes: ProbeSet, source: string): VersionResults {
  const fail = (what: string): never => {
    throw new ResultsError(source, what);
  };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('expected a JSON object');
  const v = value as Record<string, unknown>;
  if (v.schema !== RESULTS_SCHEMA) fail(`"schema" must be ${RESULTS_SCHEMA}, got ${JSON.stringify(v.schema)}`);
  if (!Array.isArray(v.probes)) fail('"probes" must be a list');
  const byId = new Map(probes.probes.map((p) => [p.id, p]));
  const seen = new Set<string>();
  const out: ProbeResult[] = [];
  for (const [k, item] of (v.probes as unknown[]).entries()) {
    const where = `probes[${k}]`;
    if (item === null || typeof item !== 'object' || Array.isArray(item)) fail(`${where}: expected an object`);
    const r = item as Record<string, unknown>;
    if (typeof r.id !== 'string') fail(`${where}: "id" must be a string`);
    const probe = byId.get(r.id as string);
    if (!probe) fail(`${where}: id ${JSON.stringify(r.id)} is not in ${probes.source}`);
    if (seen.has(probe!.id)) fail(`${where}: id ${JSON.stringify(r.id)} answered twice`);
    seen.add(probe!.id);
    out.push(validateOne(r, probe!, `${where} (${probe!.id})`, fail));
  }
  const missing = probes.probes.filter((p) => !seen.has(p.id)).map((p) => p.id);
  if (missing.length) fail(`no result for ${missing.length} probe(s): ${missing.slice(0, 5).join(', ')}`);
  // Results follow the probes file's order whatever order they came in.
  const order = new Map(probes.probes.map((p, i) => [p.id, i]));
  out.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  return { schema: RESULTS_SCHEMA, probes: out };
}

type Fail = (what: string) => never;

function num(x: unknown, what: string, fail: Fail, range?: { min?: number; max?: number }): number {
  if (typeof x !== 'number' || !Number.isFinite(x)) fail(`${what} must be a finite number`);
  const n = x as number;
  // Rounding in a runner's softmax may put a log-probability a hair above 0.
  if (range?.min !== undefined && n < range.min) fail(`${what} must be >= ${range.min}, got ${n}`);
  if (range?.max !== undefined && n > range.max) fail(`${what} must be <= ${range.max}, got ${n}`);
  return n;
}

const LOGPROB = { max: 1e-4 };

function topk(x: unknown, what: string, fail: Fail): TopK {
  if (!Array.isArray(x)) fail(`${what} must be a list of [token, logprob] pairs`);
  return (x as unknown[]).map((e, i) => {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string') fail(`${what}[${i}] must be a [token, logprob] pair`);
    return [(e as unknown[])[0] as string, num((e as unknown[])[1], `${what}[${i}][1]`, fail, LOGPROB)] as [string, number];
  });
}

function dists(x: unknown, what: string, fail: Fail): TopK[] | undefined {
  if (x === undefined) return undefined;
  if (!Array.isArray(x)) fail(`${what} must be a list of top-k lists`);
  return (x as unknown[]).map((d, i) => topk(d, `${what}[${i}]`, fail));
}

function validateOne(r: Record<string, unknown>, probe: Probe, where: string, fail: Fail): ProbeResult {
  if (probe.kind === 'text') {
    if (r.kind !== 'text') fail(`${where}: "kind" must be "text"`);
    const tokens = num(r.tokens, `${where}: "tokens"`, fail, { min: 1 });
    if (!Number.isInteger(tokens)) fail(`${where}: "tokens" must be an integer`);
    return { id: probe.id, kind: 'text', tokens, loss: num(r.loss, `${where}: "loss"`, fail, { min: -1e-4 }), ...opt('dist', dists(r.dist, `${where}: "dist"`, fail)) };
  }
  if (probe.kind === 'choices') {
    if (r.kind !== 'choices') fail(`${where}: "kind" must be "choices"`);
    if (!Array.isArray(r.choices) || r.choices.length !== probe.choices.length) fail(`${where}: "choices" must list the ${probe.choices.length} statements`);
    const choices = (r.choices as unknown[]).map((c, i) => {
      const o = c as Record<string, unknown> | null;
      if (!o || o.text !== probe.choices[i]) fail(`${where}: choices[${i}].text must be ${JSON.stringify(probe.choices[i])}`);
      return { text: probe.choices[i]!, logprob: num(o!.logprob, `${where}: choices[${i}].logprob`, fail, LOGPROB) };
    });
    const chosen = num(r.chosen, `${where}: "chosen"`, fail, { min: 0, max: choices.length - 1 });
    if (!Number.isInteger(chosen)) fail(`${where}: "chosen" must be an index`);
    const best = Math.max(...choices.map((c) => c.logprob));
    if (choices[chosen]!.logprob !== best) fail(`${where}: "chosen" must be the statement with the highest logprob`);
    const margin = num(r.margin, `${where}: "margin"`, fail, { min: 0 });
    if (typeof r.correct !== 'boolean' || r.correct !== (chosen === 0)) fail(`${where}: "correct" must be ${chosen === 0}`);
    return { id: probe.id, kind: 'choices', choices, chosen, margin, correct: chosen === 0 };
  }
  if (r.kind !== 'causal' && r.kind !== 'masked') fail(`${where}: "kind" must be "causal" or "masked"`);
  if (!Array.isArray(r.targets) || r.targets.length !== probe.targets.length) fail(`${where}: "targets" must list the ${probe.targets.length} target(s)`);
  const targets = (r.targets as unknown[]).map((t, i): TargetResult => {
    const o = t as Record<string, unknown> | null;
    const w = `${where}: targets[${i}]`;
    if (!o || o.text !== probe.targets[i]) fail(`${w}.text must be ${JSON.stringify(probe.targets[i])}`);
    const tokens = num(o!.tokens, `${w}.tokens`, fail, { min: 1 });
    if (!Number.isInteger(tokens)) fail(`${w}.tokens must be an integer`);
    const logprob = num(o!.logprob, `${w}.logprob`, fail, LOGPROB);
    const prob = num(o!.prob, `${w}.prob`, fail, { min: 0, max: 1 + 1e-4 });
    if (Math.abs(prob - Math.exp(logprob)) > 1e-4 * Math.max(1, prob)) fail(`${w}.prob must be exp(logprob)`);
    const out: TargetResult = { text: probe.targets[i]!, tokens, logprob, prob };
    if (o!.rank !== undefined) {
      const rank = num(o!.rank, `${w}.rank`, fail, { min: 1 });
      if (!Number.isInteger(rank)) fail(`${w}.rank must be an integer`);
      out.rank = rank;
    }
    if (o!.greedy !== undefined) {
      if (typeof o!.greedy !== 'boolean') fail(`${w}.greedy must be true or false`);
      out.greedy = o!.greedy as boolean;
    }
    return out;
  });
  if (typeof r.answer !== 'string') fail(`${where}: "answer" must be a string`);
  if (targets.length > 1 && !probe.targets.includes(r.answer as string)) fail(`${where}: "answer" must be one of the targets`);
  if (r.correct !== null && typeof r.correct !== 'boolean') fail(`${where}: "correct" must be true, false or null`);
  if (!targets.length && r.correct !== null) fail(`${where}: "correct" must be null for a probe without targets`);
  if (!Array.isArray(r.top5) || r.top5.length > 5) fail(`${where}: "top5" must be a list of at most 5 {token, logprob}`);
  const top5 = (r.top5 as unknown[]).map((e, i) => {
    const o = e as Record<string, unknown> | null;
    if (!o || typeof o.token !== 'string') fail(`${where}: top5[${i}].token must be a string`);
    return { token: o!.token as string, logprob: num(o!.logprob, `${where}: top5[${i}].logprob`, fail, LOGPROB) };
  });
  if (r.generated !== undefined && typeof r.generated !== 'string') fail(`${where}: "generated" must be a string`);
  return {
    id: probe.id, kind: r.kind as 'causal' | 'masked', targets, answer: r.answer as string, correct: r.correct as boolean | null, top5,
    ...opt('generated', r.generated as string | undefined), ...opt('dist', dists(r.dist, `${where}: "dist"`, fail)),
  };
}

function opt<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}
