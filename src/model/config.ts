// Owns reading config.json: each architecture reads its fields once, by their Hugging Face names, with
// the defaults of the corresponding transformers config class. A missing required field, a field of the
// wrong type or a value the engine does not implement is an error naming the field, never a guess.

import { ModelError } from './errors.js';

export class ConfigReader {
  private readonly raw: Record<string, unknown>;

  constructor(raw: unknown, readonly label: string, readonly architecture: string) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new ModelError('E_MODEL_CONFIG', label, 'config.json is not a JSON object');
    }
    this.raw = raw as Record<string, unknown>;
  }

  /** The raw value, undefined when absent or null (transformers treats null as "use the default"). */
  value(name: string): unknown {
    const v = this.raw[name];
    return v === null ? undefined : v;
  }

  /** True when the field is present and JSON null (some fields give null its own meaning). */
  isNull(name: string): boolean {
    return name in this.raw && this.raw[name] === null;
  }

  int(name: string, fallback?: number): number {
    const v = this.value(name) ?? fallback;
    if (v === undefined) throw this.missing(name);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw this.wrongType(name, v, 'a non-negative integer');
    return v;
  }

  /** A positive integer (sizes, counts). */
  size(name: string, fallback?: number): number {
    const v = this.int(name, fallback);
    if (v === 0) throw this.wrongType(name, v, 'a positive integer');
    return v;
  }

  num(name: string, fallback?: number): number {
    const v = this.value(name) ?? fallback;
    if (v === undefined) throw this.missing(name);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.wrongType(name, v, 'a number');
    return v;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.value(name) ?? fallback;
    if (typeof v !== 'boolean') throw this.wrongType(name, v, 'true or false');
    return v;
  }

  /** A string that must be one of `supported`; anything else is E_MODEL_UNSUPPORTED. */
  oneOf<T extends string>(name: string, supported: readonly T[], fallback: T): T {
    const v = this.value(name) ?? fallback;
    if (typeof v !== 'string') throw this.wrongType(name, v, 'a string');
    if (!(supported as readonly string[]).includes(v)) throw this.unsupported(name, v, `supported: ${supported.join(', ')}`);
    return v as T;
  }

  unsupported(name: string, v: unknown, detail: string): ModelError {
    return new ModelError('E_MODEL_UNSUPPORTED', this.label,
      `${this.architecture}: config.json ${name} = ${JSON.stringify(v)} is not supported by the inference engine (${detail})`,
      { hint: 'See docs/model.md for what the engine runs; other models can be probed with `[probe] command = ...` in .gittensor.' });
  }

  private missing(name: string): ModelError {
    return new ModelError('E_MODEL_CONFIG', this.label, `${this.architecture}: config.json has no ${name}`);
  }

  private wrongType(name: string, v: unknown, expected: string): ModelError {
    return new ModelError('E_MODEL_CONFIG', this.label, `${this.architecture}: config.json ${name} = ${JSON.stringify(v)}, expected ${expected}`);
  }
}
