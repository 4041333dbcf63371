// Owns the behaviour diff of two versions' probe results (pure: no model, no git): answers that flipped,
// the largest log-probability changes, the mean KL between the two predictive distributions at the probe
// positions, the agreement rate, reference-text loss changes, and logit-diff mining (the tokens whose
// predicted log-probability moved most).
//
// KL and mining use the top-k log-probabilities kept in results (`dist`), not full distributions. Per
// position, the bins are the union U of both top-k lists plus one "rest" bin. A distribution's
// probability of a token of U outside its own top-k is unknown; it is estimated as its tail mass
// (1 - top-k mass) spread evenly over those tokens and the rest, and capped at its k-th probability.
// The estimate is exact when the top-k lists hold (nearly) all the mass; otherwise KL is approximate
// (docs/probe.md, "Behaviour diff").

import { answerOf, type ProbeResult, type TopK, valueOf, type VersionResults } from './result.js';

export interface Flip {
  id: string;
  from: string;
  to: string;
  /** gained: now right, before wrong; lost: the reverse; changed: no expected answer to judge by. */
  change: 'gained' | 'lost' | 'changed';
}

export interface ValueChange {
  id: string;
  /** What the value measures: a target's logprob, a choice margin, a text loss. */
  what: string;
  before: number;
  after: number;
  delta: number;
}

export interface TokenMove {
  token: string;
  /** Mean change of the token's log-probability over the positions where either version ranks it top-k. */
  delta: number;
  positions: number;
}

export interface BehaviourDiff {
  probes: number;
  flips: Flip[];
  /** Probes with an answer whose answer is the same in both versions / those probes. */
  agreement: number | null;
  changes: ValueChange[];
  meanKl: number | null;
  klPositions: number;
  textLoss: ValueChange[];
  moved: { up: TokenMove[]; down: TokenMove[] };
}

function isRight(r: ProbeResult): boolean | null {
  return r.kind === 'text' ? null : r.correct;
}

export function compareResults(a: VersionResults, b: VersionResults, opts: { top?: number } = {}): BehaviourDiff {
  const top = opts.top ?? 10;
  const after = new Map(b.probes.map((r) => [r.id, r]));
  const flips: Flip[] = [];
  const changes: ValueChange[] = [];
  const textLoss: ValueChange[] = [];
  let same = 0, answered = 0, klSum = 0, klPositions = 0;
  const moves = new Map<string, { sum: number; n: number }>();
  for (const ra of a.probes) {
    const rb = after.get(ra.id);
    if (!rb) continue;
    const ansA = answerOf(ra), ansB = answerOf(rb);
    if (ansA !== null && ansB !== null) {
      answered++;
      if (ansA === ansB) same++;
      else {
        const ca = isRight(ra), cb = isRight(rb);
        flips.push({ id: ra.id, from: ansA, to: ansB, change: ca === false && cb === true ? 'gained' : ca === true && cb === false ? 'lost' : 'changed' });
      }
    }
    if (ra.kind === 'text' && rb.kind === 'text') {
      textLoss.push({ id: ra.id, what: 'loss', before: ra.loss, after: rb.loss, delta: rb.loss - ra.loss });
    } else if (ra.kind === 'choices' && rb.kind === 'choices') {
      const va = valueOf(ra)!, vb = valueOf(rb)!;
      changes.push({ id: ra.id, what: 'margin of the first choice', before: va, after: vb, delta: vb - va });
    } else if ((ra.kind === 'causal' || ra.kind === 'masked') && (rb.kind === 'causal' || rb.kind === 'masked')) {
      ra.targets.forEach((t, i) => {
        const u = rb.targets[i];
        if (u && u.text === t.text) changes.push({ id: ra.id, what: `logprob ${JSON.stringify(t.text)}`, before: t.logprob, after: u.logprob, delta: u.logprob - t.logprob });
      });
    }
    const da = 'dist' in ra ? ra.dist : undefined, db = 'dist' in rb ? rb.dist : undefined;
    if (da && db) {
      for (let p = 0; p < Math.min(da.length, db.length); p++) {
        const { kl, deltas } = comparePosition(da[p]!, db[p]!);
        klSum += kl;
        klPositions++;
        for (const [token, d] of deltas) {
          const m = moves.get(token) ?? { sum: 0, n: 0 };
          m.sum += d;
          m.n++;
          moves.set(token, m);
        }
      }
    }
  }
  changes.sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta) || (x.id < y.id ? -1 : 1));
  const ranked = [...moves].map(([token, m]) => ({ token, delta: m.sum / m.n, positions: m.n }));
  return {
    probes: a.probes.length, flips, agreement: answered ? same / answered : null, changes, meanKl: klPositions ? klSum / klPositions : null,
    klPositions, textLoss,
    moved: {
      up: ranked.filter((t) => t.delta > 0).sort((x, y) => y.delta - x.delta || (x.token < y.token ? -1 : 1)).slice(0, top),
      down: ranked.filter((t) => t.delta < 0).sort((x, y) => x.delta - y.delta || (x.token < y.token ? -1 : 1)).slice(0, top),
    },
  };
}

/** Probabilities of the union of both top-k lists plus a rest bin, for one distribution. */
function binned(d: TopK, union: string[]): number[] {
  const known = new Map<string, number>();
  for (const [t, lp] of d) if (!known.has(t)) known.set(t, Math.exp(lp));
  const mass = Math.min(1, [...known.values()].reduce((a, b) => a + b, 0));
  const tail = Math.max(0, 1 - mass);
  const kth = d.length ? Math.exp(d[d.length - 1]![1]) : 1;
  const absent = union.filter((t) => !known.has(t)).length;
  const each = Math.min(kth, tail / (absent + 1));
  const bins = union.map((t) => known.get(t) ?? each);
  bins.push(Math.max(0, tail - each * absent));
  return bins;
}

/** KL(a || b) over the binned distributions, and each union token's change of log-probability. */
export function comparePosition(a: TopK, b: TopK): { kl: number; deltas: [string, number][] } {
  const union = [...new Set([...a.map(([t]) => t), ...b.map(([t]) => t)])];
  const pa = binned(a, union), pb = binned(b, union);
  const FLOOR = 1e-12;
  let kl = 0;
  for (let i = 0; i < pa.length; i++) {
    if (pa[i]! > 0) kl += pa[i]! * (Math.log(pa[i]!) - Math.log(Math.max(pb[i]!, FLOOR)));
  }
  const deltas: [string, number][] = union.map((t, i) => [t, Math.log(Math.max(pb[i]!, FLOOR)) - Math.log(Math.max(pa[i]!, FLOOR))]);
  return { kl: Math.max(0, kl), deltas };
}
