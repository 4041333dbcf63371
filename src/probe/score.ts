// Owns scoring probes with the built-in engine: turns each probe into token sequences, runs all of a
// version's sequences through LanguageModel.logits in as few batches as memory allows (the engine reads
// the weights once per batch), and reduces the logits to the results schema (src/probe/result.ts).
//
// Conventions (docs/probe.md, "Scoring"):
// * causal target: tokens = encode(prompt + target) minus encode(prompt)'s length, as lm-eval-harness's
//   loglikelihood does; logprob = sum over those tokens;
// * masked target: one token (tokenizer.tokenToId(target), else encode(target) without special tokens
//   must give one id), log P(target at the mask), rank among the whole vocabulary;
// * choices: sum log-probability of each statement (causal: every token after the first; masked: the
//   pseudo-log-likelihood, masking one token at a time, as BEAR scores masked LMs);
// * text: mean negative log-likelihood per token (masked LMs: pseudo-log-likelihood).

import { ExitCode, GitTensorError } from '../errors/index.js';
import type { LanguageModel, Tokenizer } from '../model/types.js';
import type { ChoicesProbe, Probe, ProbeSet, PromptProbe, TextProbe } from './probes.js';
import { DIST_K, type ProbeResult, type PromptResult, RESULTS_SCHEMA, type TargetResult, TEXT_DIST_POSITIONS, type TopK, type VersionResults } from './result.js';

/** Logit rows held at once across a batch: bounds memory at about this many floats (256 MiB). */
const MAX_BATCH_FLOATS = 64 * 1024 * 1024;
const MASK_SPELLINGS = ['[MASK]', '<mask>'];

export class ProbeScoreError extends GitTensorError {
  constructor(label: string, probe: Probe, what: string, hint?: string) {
    super('E_PROBE', `${label}: probe ${JSON.stringify(probe.id)} (line ${probe.line}): ${what}`, {
      data: { file: label, probe: probe.id }, exitCode: ExitCode.badInput, hint: hint ?? 'Fix the probe in the probes file (docs/probe.md).',
    });
  }
}

/** One sequence for the engine; `use` receives one log-softmaxed row per requested position. */
interface Job {
  ids: number[];
  positions: number[];
  use: (rows: LogRow[]) => void;
}

/** A position's logits with its log-normaliser: logprob(t) = logits[t] - lse. */
export class LogRow {
  readonly lse: number;
  constructor(readonly logits: Float32Array) {
    let max = -Infinity;
    for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
    let sum = 0;
    for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
    this.lse = max + Math.log(sum);
  }
  logprob(id: number): number {
    return this.logits[id]! - this.lse;
  }
  /** 1 + the number of tokens strictly more likely than `id`. */
  rank(id: number): number {
    const x = this.logits[id]!;
    let above = 0;
    for (let i = 0; i < this.logits.length; i++) if (this.logits[i]! > x) above++;
    return above + 1;
  }
  argmax(): number {
    let best = 0;
    for (let i = 1; i < this.logits.length; i++) if (this.logits[i]! > this.logits[best]!) best = i;
    return best;
  }
  /** The k most likely ids, most likely first (ties: lower id first). */
  top(k: number): number[] {
    const ids: number[] = [];
    for (let i = 0; i < this.logits.length; i++) {
      if (ids.length < k || this.logits[i]! > this.logits[ids[ids.length - 1]!]!) {
        let at = ids.length;
        while (at > 0 && this.logits[ids[at - 1]!]! < this.logits[i]!) at--;
        ids.splice(at, 0, i);
        if (ids.length > k) ids.pop();
      }
    }
    return ids;
  }
}

export interface ScoreOptions {
  /** Names the version in errors. */
  label: string;
  /** Greedy continuation length for prompt probes (causal LMs); 0 = none. */
  generate?: number;
}

/** Scores every probe on one model version. */
export async function scoreProbes(model: LanguageModel, set: ProbeSet, opts: ScoreOptions): Promise<VersionResults> {
  const tok = model.tokenizer;
  if (!tok) {
    throw new GitTensorError('E_PROBE_TOKENIZER', `${opts.label}: the version has no tokenizer.json; probes are text`, {
      exitCode: ExitCode.badInput, hint: 'Commit the model\'s tokenizer.json beside the checkpoint.',
    });
  }
  if (opts.generate && model.kind !== 'causal') {
    throw new GitTensorError('E_PROBE_GENERATE', `${opts.label}: --generate continues text, and ${model.architecture} is a masked LM`, {
      exitCode: ExitCode.usage, hint: 'Leave out --generate for masked LMs.',
    });
  }
  const jobs: Job[] = [];
  const finish: (() => ProbeResult)[] = [];
  const prompts: { probe: PromptProbe; ids: number[]; result: () => PromptResult }[] = [];
  for (const probe of set.probes) {
    const ctx = { model, tok, label: opts.label, jobs };
    if (probe.kind === 'prompt') {
      const p = model.kind === 'masked' ? maskedPrompt(ctx, probe) : causalPrompt(ctx, probe);
      finish.push(p.result);
      prompts.push({ probe, ids: p.ids, result: p.result });
    } else if (probe.kind === 'choices') finish.push(choices(ctx, probe));
    else finish.push(text(ctx, probe));
  }
  await runJobs(model, jobs);
  const results = finish.map((f) => f());
  if (opts.generate) {
    const generated = await greedy(model, prompts.map((p) => p.ids), opts.generate);
    let k = 0;
    for (const r of results) {
      if (r.kind !== 'causal') continue;
      r.generated = continuation(tok, prompts[k]!.ids, generated[k]!);
      k++;
    }
  }
  return { schema: RESULTS_SCHEMA, probes: results };
}

/** Runs jobs in batches whose logit rows fit MAX_BATCH_FLOATS. */
async function runJobs(model: LanguageModel, jobs: Job[]): Promise<void> {
  let at = 0;
  while (at < jobs.length) {
    let floats = 0, end = at;
    while (end < jobs.length && (end === at || floats + jobs[end]!.positions.length * model.vocabSize <= MAX_BATCH_FLOATS)) {
      floats += jobs[end]!.positions.length * model.vocabSize;
      end++;
    }
    const batch = jobs.slice(at, end);
    const out = await model.logits(batch.map((j) => ({ ids: j.ids, positions: j.positions })));
    batch.forEach((job, k) => {
      const flat = out[k]!;
      if (flat.length !== job.positions.length * model.vocabSize) {
        throw new GitTensorError('E_INTERNAL', `engine returned ${flat.length} logits for ${job.positions.length} position(s) of ${model.vocabSize}`, { exitCode: ExitCode.internal });
      }
      job.use(job.positions.map((_, r) => new LogRow(flat.subarray(r * model.vocabSize, (r + 1) * model.vocabSize))));
    });
    at = end;
  }
}

interface Ctx {
  model: LanguageModel;
  tok: Tokenizer;
  label: string;
  jobs: Job[];
}

function checkLength(c: Ctx, probe: Probe, ids: number[]): void {
  if (ids.length > c.model.maxPositions) {
    throw new ProbeScoreError(c.label, probe, `${ids.length} tokens, more than the model's ${c.model.maxPositions} positions`, 'Shorten the probe or split the text into several probes.');
  }
}

/**
 * A token as text, with its leading space: SentencePiece decoders drop the `▁` of a lone token, so the
 * raw spelling is read for those.
 */
function tokenText(tok: Tokenizer, id: number): string {
  const raw = tok.idToToken(id);
  if (raw !== undefined && raw.startsWith('\u2581')) return ' ' + raw.slice(1).replace(/\u2581/g, ' ');
  return tok.decode([id]);
}

/** The text `ids` add after `prefix` (decoding the whole keeps spaces a lone decode would drop). */
function continuation(tok: Tokenizer, prefix: number[], ids: number[]): string {
  const before = tok.decode(prefix);
  const all = tok.decode([...prefix, ...ids]);
  return all.startsWith(before) ? all.slice(before.length) : tok.decode(ids);
}

function topOf(tok: Tokenizer, row: LogRow, k: number): TopK {
  return row.top(k).map((id) => [tokenText(tok, id), row.logprob(id)]);
}

function causalPrompt(c: Ctx, probe: PromptProbe): { ids: number[]; result: () => PromptResult } {
  const { tok } = c;
  if (MASK_SPELLINGS.some((m) => probe.prompt.includes(m))) {
    throw new ProbeScoreError(c.label, probe, `the prompt has a mask token but ${c.model.architecture} is a causal LM`, 'Use a prompt the model continues, or probe a masked LM.');
  }
  const ctxIds = tok.encode(probe.prompt);
  if (!ctxIds.length) throw new ProbeScoreError(c.label, probe, 'the prompt encodes to no tokens');
  checkLength(c, probe, ctxIds);
  let promptRow: LogRow | undefined;
  const targets: TargetResult[] = [];
  const wholes = probe.targets.map((target) => tok.encode(probe.prompt + target));
  const shares = wholes.map((whole) => ctxIds.every((id, k) => whole[k] === id));
  probe.targets.forEach((target, i) => {
    const whole = wholes[i]!;
    checkLength(c, probe, whole);
    const cont = whole.slice(ctxIds.length);
    if (!cont.length) throw new ProbeScoreError(c.label, probe, `target ${JSON.stringify(target)} adds no token to the prompt`);
    const positions = cont.map((_, k) => ctxIds.length - 1 + k);
    c.jobs.push({
      ids: whole,
      positions,
      use: (rows) => {
        let logprob = 0, greedy = true;
        rows.forEach((row, k) => {
          logprob += row.logprob(cont[k]!);
          if (row.argmax() !== cont[k]) greedy = false;
        });
        const r: TargetResult = { text: target, tokens: cont.length, logprob, prob: Math.exp(logprob), greedy };
        if (cont.length === 1) r.rank = rows[0]!.rank(cont[0]!);
        targets[i] = r;
        if (!promptRow && shares[i]) promptRow = rows[0];
      },
    });
  });
  if (!shares.some(Boolean)) {
    c.jobs.push({ ids: ctxIds, positions: [ctxIds.length - 1], use: (rows) => { promptRow = rows[0]; } });
  }
  return { ids: ctxIds, result: () => promptResult(c, probe, 'causal', targets, promptRow!) };
}

function maskedPrompt(c: Ctx, probe: PromptProbe): { ids: number[]; result: () => PromptResult } {
  const { tok } = c;
  const mask = tok.maskToken;
  if (!mask) throw new ProbeScoreError(c.label, probe, `${c.model.architecture}'s tokenizer has no mask token`);
  const count = probe.prompt.split(mask.text).length - 1;
  if (count !== 1) throw new ProbeScoreError(c.label, probe, `a masked-LM prompt needs exactly one ${mask.text}, found ${count}`);
  const ids = tok.encode(probe.prompt);
  checkLength(c, probe, ids);
  const at = ids.indexOf(mask.id);
  if (at < 0 || ids.indexOf(mask.id, at + 1) >= 0) throw new ProbeScoreError(c.label, probe, `${mask.text} does not encode to one mask token`);
  const unknown = ['[UNK]', '<unk>'].map((u) => tok.tokenToId(u)).filter((id): id is number => id !== undefined);
  const targetIds = probe.targets.map((t) => {
    const direct = tok.tokenToId(t);
    if (direct !== undefined) return direct;
    const enc = tok.encode(t, { addSpecialTokens: false });
    if (enc.length !== 1) {
      throw new ProbeScoreError(c.label, probe, `target ${JSON.stringify(t)} is ${enc.length} tokens; a masked LM fills one token per ${mask.text}`,
        `Use a single-token target (the tokenizer splits it into ${enc.map((id) => JSON.stringify(tok.idToToken(id) ?? String(id))).join(' ')}).`);
    }
    if (unknown.includes(enc[0]!)) throw new ProbeScoreError(c.label, probe, `target ${JSON.stringify(t)} is not in the vocabulary (it encodes to ${tok.idToToken(enc[0]!)})`);
    return enc[0]!;
  });
  let row: LogRow | undefined;
  c.jobs.push({ ids, positions: [at], use: (rows) => { row = rows[0]; } });
  return {
    ids,
    result: () => {
      const targets = probe.targets.map((t, i): TargetResult => {
        const lp = row!.logprob(targetIds[i]!);
        const rank = row!.rank(targetIds[i]!);
        return { text: t, tokens: 1, logprob: lp, prob: Math.exp(lp), rank, greedy: rank === 1 };
      });
      return promptResult(c, probe, 'masked', targets, row!);
    },
  };
}

function promptResult(c: Ctx, probe: PromptProbe, kind: 'causal' | 'masked', targets: TargetResult[], row: LogRow): PromptResult {
  const top = row.top(Math.max(5, DIST_K));
  const top5 = top.slice(0, 5).map((id) => ({ token: tokenText(c.tok, id), logprob: row.logprob(id) }));
  let answer: string, correct: boolean | null;
  if (targets.length) {
    let best = 0;
    targets.forEach((t, i) => { if (t.logprob > targets[best]!.logprob) best = i; });
    // One target: right when the model would produce it (greedy), and the answer is what it produces
    // instead when it would not; several targets: the best one, right when it is the first.
    correct = targets.length === 1 ? targets[0]!.greedy === true : best === 0;
    answer = targets.length === 1 && !correct ? top5[0]!.token : targets[best]!.text;
  } else {
    answer = top5[0]!.token;
    correct = null;
  }
  return { id: probe.id, kind, targets, answer, correct, top5, dist: [top.slice(0, DIST_K).map((id) => [tokenText(c.tok, id), row.logprob(id)])] };
}

/** Jobs scoring a statement's tokens; calls `done` with the summed logprob, the count, and each position's row. */
function sequenceScore(c: Ctx, probe: Probe, s: string, done: (sum: number, count: number, rows: LogRow[]) => void): void {
  const { tok, model } = c;
  const ids = tok.encode(s);
  checkLength(c, probe, ids);
  if (model.kind === 'causal') {
    if (ids.length < 2) throw new ProbeScoreError(c.label, probe, `${JSON.stringify(s)} is one token: nothing to predict`);
    const positions = ids.slice(0, -1).map((_, k) => k);
    c.jobs.push({
      ids, positions,
      use: (rows) => done(rows.reduce((acc, row, k) => acc + row.logprob(ids[k + 1]!), 0), rows.length, rows),
    });
    return;
  }
  const mask = tok.maskToken;
  if (!mask) throw new ProbeScoreError(c.label, probe, `${model.architecture}'s tokenizer has no mask token`);
  // Pseudo-log-likelihood: mask each of the statement's own tokens (not [CLS]/[SEP]) in turn.
  const inner = tok.encode(s, { addSpecialTokens: false });
  let offset = -1;
  for (let o = 0; o + inner.length <= ids.length && offset < 0; o++) if (inner.every((id, k) => ids[o + k] === id)) offset = o;
  if (offset < 0 || !inner.length) throw new ProbeScoreError(c.label, probe, `cannot find the tokens of ${JSON.stringify(s)} in its encoding`);
  const parts: number[] = new Array(inner.length);
  const rowsOut: LogRow[] = new Array(inner.length);
  let left = inner.length;
  inner.forEach((id, k) => {
    const masked = ids.slice();
    masked[offset + k] = mask.id;
    c.jobs.push({
      ids: masked, positions: [offset + k],
      use: (rows) => {
        parts[k] = rows[0]!.logprob(id);
        rowsOut[k] = rows[0]!;
        if (--left === 0) done(parts.reduce((a, b) => a + b, 0), inner.length, rowsOut);
      },
    });
  });
}

function choices(c: Ctx, probe: ChoicesProbe): () => ProbeResult {
  const lps: number[] = new Array(probe.choices.length);
  probe.choices.forEach((s, i) => sequenceScore(c, probe, s, (sum) => { lps[i] = sum; }));
  return () => {
    let chosen = 0;
    lps.forEach((lp, i) => { if (lp > lps[chosen]!) chosen = i; });
    const second = Math.max(...lps.filter((_, i) => i !== chosen));
    return {
      id: probe.id, kind: 'choices', choices: probe.choices.map((text, i) => ({ text, logprob: lps[i]! })),
      chosen, margin: lps[chosen]! - second, correct: chosen === 0,
    };
  };
}

function text(c: Ctx, probe: TextProbe): () => ProbeResult {
  let loss = 0, tokens = 0;
  let dist: TopK[] = [];
  sequenceScore(c, probe, probe.text, (sum, count, rows) => {
    loss = -sum / count;
    tokens = count;
    dist = rows.slice(0, TEXT_DIST_POSITIONS).map((row) => topOf(c.tok, row, DIST_K));
  });
  return () => ({ id: probe.id, kind: 'text', tokens, loss, dist });
}

/** Greedy continuations of `prompts`, `n` tokens each (fewer at EOS or the model's length), one batch per step. */
export async function greedy(model: LanguageModel, prompts: number[][], n: number): Promise<number[][]> {
  const seqs = prompts.map((p) => p.slice());
  const out = prompts.map(() => [] as number[]);
  const live = new Set(prompts.map((_, i) => i).filter((i) => seqs[i]!.length > 0));
  for (let step = 0; step < n && live.size; step++) {
    const idx = [...live];
    const logits = await model.logits(idx.map((i) => ({ ids: seqs[i]!, positions: [seqs[i]!.length - 1] })));
    idx.forEach((i, k) => {
      const next = new LogRow(logits[k]!).argmax();
      seqs[i]!.push(next);
      out[i]!.push(next);
      if (next === model.tokenizer?.eosId || seqs[i]!.length >= model.maxPositions) live.delete(i);
    });
  }
  return out;
}
