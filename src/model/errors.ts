// Owns the errors of the inference engine: a model version the engine cannot run (architecture, config
// value or tensor it does not know) or an input it cannot take. All are exit 3 (malformed input) and
// name the version's label, so a user comparing several versions knows which one failed.

import { ExitCode, GitTensorError, type ErrorData } from '../errors/index.js';

export type ModelErrorCode =
  /** An architecture, config value or tensor dtype the engine does not implement. */
  | 'E_MODEL_UNSUPPORTED'
  /** config.json lacks a field the architecture needs, or a field has the wrong type. */
  | 'E_MODEL_CONFIG'
  /** A tensor the architecture needs is missing or has the wrong shape. */
  | 'E_MODEL_TENSOR'
  /** Token ids or positions the model cannot take (out of vocabulary, too long, empty). */
  | 'E_MODEL_INPUT';

export const EXTERNAL_RUNNER_HINT =
  'To probe other models, set `[probe] command = <your runner>` in .gittensor (see docs/probe.md).';

export class ModelError extends GitTensorError {
  constructor(code: ModelErrorCode, label: string, message: string, opts: { data?: ErrorData; hint?: string } = {}) {
    super(code, `${label}: ${message}`, { data: { file: label, ...opts.data }, hint: opts.hint, exitCode: ExitCode.badInput });
  }
}
