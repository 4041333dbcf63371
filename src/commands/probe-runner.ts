// Owns running a user's external probe runner (`[probe] command` in .gittensor, docs/probe.md "External
// runner"): the command runs with `sh -c` in the repository's top folder, with
//   GIT_TENSOR_MODEL_DIR   the folder holding the version's checkpoint, config and tokenizer files
//   GIT_TENSOR_CHECKPOINT  the checkpoint file (or shard index) in that folder
//   GIT_TENSOR_PROBES      the probes JSONL file
//   GIT_TENSOR_GENERATE    the --generate length (0 = none)
//   GIT_TENSOR_LABEL       the version's name, e.g. HEAD~1:model.safetensors
// and must print the version's results as one JSON object on stdout (src/probe/result.ts); its stderr
// goes to the user. The output is validated strictly; every error names the command.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCode, GitTensorError } from '../errors/index.js';
import type { ProbeSet } from '../probe/probes.js';
import { ResultsError, validateResults, type VersionResults } from '../probe/result.js';
import type { RepoContext } from './context.js';
import type { LazyFetcher } from '../remote/lazy-fetch.js';
import { materialize, type ModelVersion } from './probe-source.js';

export interface RunnerOptions {
  command: string;
  version: ModelVersion;
  probes: ProbeSet;
  /** Absolute path of the probes file the runner reads. */
  probesFile: string;
  generate: number;
  repo: RepoContext;
  lazy: LazyFetcher;
  cwd: string;
}

export async function runExternal(o: RunnerOptions): Promise<VersionResults> {
  const tmp = mkdtempSync(join(tmpdir(), 'git-tensor-probe-'));
  const name = `probe command ${JSON.stringify(o.command)}`;
  try {
    const { dir, checkpoint } = await materialize(o.version, join(tmp, 'model'), o.repo, o.lazy, o.cwd);
    const env = {
      ...process.env, GIT_TENSOR_MODEL_DIR: dir, GIT_TENSOR_CHECKPOINT: checkpoint, GIT_TENSOR_PROBES: o.probesFile,
      GIT_TENSOR_GENERATE: String(o.generate), GIT_TENSOR_LABEL: o.version.label,
    };
    const child = spawn('sh', ['-c', o.command], { cwd: o.cwd, env, stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    const status = await new Promise<number | string>((res, rej) => {
      child.on('error', rej);
      child.on('close', (code, signal) => res(code ?? signal ?? -1));
    });
    if (status !== 0) {
      throw new GitTensorError('E_PROBE_RUNNER', `${name} failed for ${o.version.label} (${typeof status === 'number' ? `exit ${status}` : status})`, {
        exitCode: ExitCode.failure, data: { command: o.command, label: o.version.label },
        hint: 'Its messages are above. Try it by hand with the GIT_TENSOR_* variables of docs/probe.md ("External runner").',
      });
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new ResultsError(`${name} (${o.version.label})`, `printed something that is not JSON (${(err as Error).message}): ${JSON.stringify(text.slice(0, 80))}`);
    }
    return validateResults(value, o.probes, `${name} (${o.version.label})`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
