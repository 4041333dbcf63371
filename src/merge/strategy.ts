// Owns merge strategies as data: their names, parameters and defaults, how they are written in config
// files, flags and the environment, and which rule applies to a tensor. Pure: callers pass config text.
// The formulas themselves live in elementwise.ts; docs/merge.md documents both.

import { UsageError } from '../errors/index.js';

// `protect` merges conflicting elements as `ties` does; the merge guard (src/commands/guard.ts) then sets
// them back to base in the modules it finds responsible for a protected probe's regression.
export const STRATEGIES = ['fail', 'ours', 'theirs', 'base', 'average', 'task-arithmetic', 'ties', 'dare', 'dare-ties', 'slerp', 'protect'] as const;
export type StrategyName = (typeof STRATEGIES)[number];

export interface Strategy {
  name: StrategyName;
  /** ties, dare, dare-ties, protect: fraction of each task vector kept (0 < density <= 1). */
  density: number;
  /** task-arithmetic, ties, dare, dare-ties: scale of the merged task vector. */
  lambda: number;
  /** average: weights of ours and theirs (normalised to sum 1). */
  weights: [number, number];
  /** dare, dare-ties: PRNG seed; the same seed gives the same merge on every machine. */
  seed: number;
  /** slerp: interpolation position, 0 = ours, 1 = theirs. */
  t: number;
}

export const DEFAULTS: Omit<Strategy, 'name'> = { density: 0.2, lambda: 1, weights: [0.5, 0.5], seed: 0, t: 0.5 };

export type StrategyParams = Partial<Strategy>;

/** Checks and completes a strategy; `where` says where the values came from, for the error message. */
export function makeStrategy(params: StrategyParams, where: string): Strategy {
  const s: Strategy = { name: 'fail', ...DEFAULTS, ...dropUndefined(params) };
  const bad = (what: string): never => {
    throw new UsageError(`${where}: ${what}`, 'See docs/merge.md for the strategies and their parameters.');
  };
  if (!STRATEGIES.includes(s.name)) bad(`unknown merge strategy ${JSON.stringify(s.name)} (one of ${STRATEGIES.join(', ')})`);
  if (!(s.density > 0 && s.density <= 1)) bad(`density must be in (0, 1], got ${s.density}`);
  if (!Number.isFinite(s.lambda)) bad(`lambda must be a finite number, got ${s.lambda}`);
  if (s.weights.length !== 2 || !s.weights.every(Number.isFinite) || s.weights[0] + s.weights[1] === 0) {
    bad(`weights must be two finite numbers with a non-zero sum, got ${s.weights.join(',')}`);
  }
  if (!Number.isSafeInteger(s.seed) || s.seed < 0) bad(`seed must be a non-negative integer, got ${s.seed}`);
  if (!(s.t >= 0 && s.t <= 1)) bad(`t must be in [0, 1], got ${s.t}`);
  return s;
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Parses "ties density=0.2 lambda=1" or "strategy=ties density=0.2" (GIT_TENSOR_MERGE, config values). */
export function parseStrategyText(text: string, where: string): StrategyParams {
  const params: Record<string, string> = {};
  for (const word of text.trim().split(/\s+/).filter(Boolean)) {
    const eq = word.indexOf('=');
    if (eq < 0) params.strategy = word;
    else params[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return paramsFromStrings(params, where);
}

/** Converts key/value strings (config file entries, flags) into typed parameters. */
export function paramsFromStrings(kv: Record<string, string>, where: string): StrategyParams {
  const out: StrategyParams = {};
  for (const [key, value] of Object.entries(kv)) {
    const num = () => {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${where}: ${key} must be a number, got ${JSON.stringify(value)}`);
      return n;
    };
    switch (key) {
      case 'strategy': out.name = value as StrategyName; break;
      case 'density': out.density = num(); break;
      case 'lambda': out.lambda = num(); break;
      case 'seed': out.seed = num(); break;
      case 't': out.t = num(); break;
      case 'weights': {
        const w = value.split(',').map(Number);
        out.weights = [w[0]!, w[1]!];
        if (w.length !== 2 || w.some((x) => !Number.isFinite(x))) throw new UsageError(`${where}: weights must be two numbers like 0.7,0.3`);
        break;
      }
      default:
        throw new UsageError(`${where}: unknown merge setting ${JSON.stringify(key)}`, 'Settings: strategy, density, lambda, weights, seed, t.');
    }
  }
  return out;
}

/** One rule: which files and tensors it covers, and the parameters it sets (later rules override). */
export interface MergeRule {
  /** Glob over the file path; undefined matches every file. */
  path?: string;
  /** Glob over the tensor name; `*` crosses dots (tensor names are not paths). */
  tensor: string;
  params: StrategyParams;
  /** Where the rule was written, for messages. */
  source: string;
}

/**
 * Rules from `git config --list` entries of the sections `[merge "<selector>"]` (.gittensor) or
 * `[tensor-merge "<selector>"]` (git config). A selector is a tensor glob, optionally prefixed by a file
 * glob and a colon: `*.self_attn.*`, `adapters/*.safetensors:*lora_B*`. `[merge]` alone covers everything.
 * Entries are `key=value` lines, or `key\nvalue` as `git config --null --list` writes them (which keeps
 * a `=` inside a selector intact). Consecutive entries of one selector make one rule; the same selector
 * written again after another one is a new, later rule, as a reader of the file expects.
 */
export function rulesFromConfigList(lines: string[], section: string, source: string): MergeRule[] {
  const groups: [string, Record<string, string>][] = [];
  for (const line of lines) {
    const nl = line.indexOf('\n');
    const eq = nl >= 0 ? nl : line.indexOf('=');
    const key = eq < 0 ? line : line.slice(0, eq);
    const value = eq < 0 ? 'true' : line.slice(eq + 1);
    if (!key.toLowerCase().startsWith(section + '.')) continue;
    const rest = key.slice(section.length + 1);
    const dot = rest.lastIndexOf('.');
    const selector = dot < 0 ? '' : rest.slice(0, dot);
    const name = dot < 0 ? rest : rest.slice(dot + 1);
    if (groups.at(-1)?.[0] !== selector) groups.push([selector, {}]);
    groups.at(-1)![1][name.toLowerCase()] = value;
  }
  return groups.map(([selector, kv]) => {
    const colon = selector.indexOf(':');
    const where = `${source} [${section}${selector ? ` "${selector}"` : ''}]`;
    return {
      path: colon < 0 ? undefined : selector.slice(0, colon),
      tensor: colon < 0 ? selector || '*' : selector.slice(colon + 1) || '*',
      params: paramsFromStrings(kv, where),
      source: where,
    };
  });
}

export function globToRegExp(glob: string, crossSlash: boolean): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += crossSlash ? '.*' : '[^/]*';
    } else if (c === '?') re += crossSlash ? '.' : '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

/** The strategy for one tensor: defaults, then every matching rule in order, then `override`. */
export function strategyFor(rules: MergeRule[], path: string, tensor: string, override: StrategyParams = {}, overrideSource = 'GIT_TENSOR_MERGE'): Strategy {
  let params: StrategyParams = {};
  const sources: string[] = [];
  for (const r of rules) {
    if (r.path !== undefined && !globToRegExp(r.path, false).test(path) && !globToRegExp(r.path, false).test(path.split('/').pop()!)) continue;
    if (!globToRegExp(r.tensor, true).test(tensor)) continue;
    params = { ...params, ...dropUndefined(r.params) };
    sources.push(r.source);
  }
  const overridden = dropUndefined(override);
  if (Object.keys(overridden).length) sources.push(overrideSource);
  params = { ...params, ...overridden };
  return makeStrategy(params, sources.length ? sources.join(', ') : 'merge settings');
}
