// Owns the error vocabulary of git-tensor: one base class with a stable `code`, structured `data`,
// a one-line message and the next command to run, plus one small class per kind of failure.
// Only cli/main.ts turns these into text and exit codes; everything else just throws them.

/** Exit codes are part of the interface: scripts and git hooks may test them. */
export const ExitCode = {
  ok: 0,
  /** Generic failure, or merge conflicts left for the user. */
  failure: 1,
  /** The command line was wrong. */
  usage: 2,
  /** A file or pointer is malformed. */
  badInput: 3,
  /** Objects the operation needs are not in the local store. */
  missingObjects: 4,
  /** The store holds an object whose bytes do not match its id. */
  corrupt: 5,
  /** A bug in git-tensor: the message asks for a report. */
  internal: 70,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface ErrorData {
  /** The working-tree path or store file the error is about, when there is one. */
  file?: string;
  /** The tensor name the error is about, when there is one. */
  tensor?: string;
  [key: string]: unknown;
}

export class GitTensorError extends Error {
  readonly code: string;
  readonly data: ErrorData;
  /** What the user should run or do next; printed on its own line. */
  readonly hint: string | undefined;
  readonly exitCode: ExitCode;

  constructor(code: string, message: string, opts: { data?: ErrorData; hint?: string; exitCode?: ExitCode } = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.data = opts.data ?? {};
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? ExitCode.failure;
  }
}

export class UsageError extends GitTensorError {
  constructor(message: string, hint?: string) {
    super('E_USAGE', message, { hint, exitCode: ExitCode.usage });
  }
}

/** Closed set of ways a safetensors file can be malformed; each has its own test. */
export type SafetensorsErrorCode =
  | 'E_ST_TRUNCATED_PREFIX'
  | 'E_ST_HEADER_TOO_LARGE'
  | 'E_ST_TRUNCATED_HEADER'
  | 'E_ST_HEADER_UTF8'
  | 'E_ST_HEADER_JSON'
  | 'E_ST_HEADER_SHAPE'
  | 'E_ST_DTYPE'
  | 'E_ST_SHAPE'
  | 'E_ST_OFFSETS'
  | 'E_ST_SIZE_MISMATCH'
  | 'E_ST_OVERFLOW'
  | 'E_ST_NOT_CONTIGUOUS'
  | 'E_ST_TRUNCATED_DATA'
  | 'E_ST_TRAILING_DATA'
  | 'E_ST_METADATA';

export class SafetensorsError extends GitTensorError {
  constructor(code: SafetensorsErrorCode, message: string, data: ErrorData = {}) {
    const where = data.file ? `${data.file}: ` : '';
    super(code, `${where}${message}`, {
      data,
      exitCode: ExitCode.badInput,
      hint: 'The file is not a valid safetensors checkpoint; re-save it (e.g. safetensors.torch.save_file) ' +
        'or untrack it with `git tensor untrack <pattern>`.',
    });
  }
}

export class PointerError extends GitTensorError {
  constructor(code: 'E_POINTER_SYNTAX' | 'E_POINTER_VERSION' | 'E_POINTER_CONFLICT', message: string, data: ErrorData = {}, hint?: string) {
    super(code, message, { data, exitCode: ExitCode.badInput, hint });
  }
}

export class MissingObjectsError extends GitTensorError {
  constructor(readonly ids: string[], data: ErrorData = {}) {
    const shown = ids.slice(0, 5).map((id) => id.slice(0, 16)).join(', ') + (ids.length > 5 ? `, ... (${ids.length} in all)` : '');
    const where = data.file ? `${data.file}: ` : '';
    super('E_MISSING_OBJECTS', `${where}${ids.length} object(s) missing from the tensor store: ${shown}`, {
      data: { ...data, ids },
      exitCode: ExitCode.missingObjects,
      hint: 'Fetch them with `git tensor fetch` from a remote that has them, or check out without them ' +
        'using GIT_TENSOR_SKIP_SMUDGE=1 (the pointer file is left in place).',
    });
  }
}

export class CorruptObjectError extends GitTensorError {
  constructor(id: string, detail: string, data: ErrorData = {}) {
    super('E_CORRUPT_OBJECT', `object ${id.slice(0, 16)} is corrupt: ${detail}`, {
      data: { ...data, id },
      exitCode: ExitCode.corrupt,
      hint: 'Run `git tensor fsck` to list damaged objects, then restore them from a remote (`git tensor fetch`).',
    });
  }
}

/** A pack or pack index of the store is damaged or gone (as opposed to one object in it). */
export class PackError extends GitTensorError {
  constructor(file: string, detail: string) {
    super('E_CORRUPT_PACK', `${file}: ${detail}`, {
      data: { file },
      exitCode: ExitCode.corrupt,
      hint: 'Run `git tensor fsck` to see what is affected, then restore the objects from a remote with `git tensor fetch`.',
    });
  }
}

/** errno codes of a write that failed for lack of room (disk full, quota, file size limit) or I/O. */
const STORE_WRITE_ERRNOS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for this filesystem or the process file-size limit',
  EIO: 'input/output error from the device',
  EROFS: 'the filesystem is read-only',
};

/**
 * Writing to the tensor store failed (disk full, quota, I/O error). The writer removed what it had
 * written, so nothing was stored and the repository is as before. E_DISK_FULL when freeing space helps,
 * E_STORE_WRITE otherwise.
 */
export class StoreWriteError extends GitTensorError {
  constructor(readonly errno: string, readonly storeDir: string, file?: string) {
    const full = errno === 'ENOSPC' || errno === 'EDQUOT' || errno === 'EFBIG';
    const where = file ? `${file}: ` : '';
    super(full ? 'E_DISK_FULL' : 'E_STORE_WRITE', `${where}cannot write to the tensor store ${storeDir}: ${STORE_WRITE_ERRNOS[errno] ?? errno} (${errno}); nothing was stored`, {
      data: { file, storeDir, errno },
      hint: full
        ? `Free space on the disk holding ${storeDir} (\`git tensor gc\` drops unreachable objects), then run the command again${file ? ` (\`git add ${file}\`)` : ''}.`
        : `Check the disk holding ${storeDir} (dmesg, mount options), then run the command again.`,
    });
  }

  /** The same failure, naming the working-tree file whose content was being stored. */
  forFile(file: string): StoreWriteError {
    return new StoreWriteError(this.errno, this.storeDir, file);
  }

  /** `err` as a StoreWriteError when it is a write failure of that kind, else undefined. */
  static from(err: unknown, storeDir: string): StoreWriteError | undefined {
    if (err instanceof StoreWriteError) return err;
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    return code && code in STORE_WRITE_ERRNOS ? new StoreWriteError(code, storeDir) : undefined;
  }
}

/**
 * A checkout would write a file larger than the free space of the working tree's disk. Raised before
 * anything is written: git then leaves the file as it was instead of a truncated one.
 */
export class WorkingTreeFullError extends GitTensorError {
  constructor(file: string, neededBytes: number, freeBytes: number) {
    const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
    super('E_DISK_FULL', `${file}: not enough free disk to write it (${mib(neededBytes)} needed, ${mib(freeBytes)} free); nothing was written`, {
      data: { file, neededBytes, freeBytes },
      hint: `Free space on the disk holding ${file}, then run \`git checkout -- ${file}\`.`,
    });
  }
}

export class GitCommandError extends GitTensorError {
  constructor(args: string[], status: number | null, stderr: string) {
    super('E_GIT', `git ${args.join(' ')} failed (exit ${status ?? 'signal'}): ${stderr.trim()}`, {
      data: { args, status },
    });
  }
}

export class ProtocolError extends GitTensorError {
  constructor(message: string, data: ErrorData = {}) {
    super('E_PROTOCOL', message, { data, hint: 'This is a git/git-tensor version mismatch or a bug; run `git tensor doctor`.' });
  }
}

/** True for errors the user can act on (printed without a stack trace). */
export function isUserError(err: unknown): err is GitTensorError {
  return err instanceof GitTensorError;
}

/** The text a user sees for an error: the message, then the next step on its own line. */
export function formatError(err: unknown): string {
  if (isUserError(err)) {
    return `git-tensor: error[${err.code}]: ${err.message}` + (err.hint ? `\nhint: ${err.hint}` : '');
  }
  const e = err as Error;
  return `git-tensor: internal error: ${e?.stack ?? String(err)}\nhint: this is a bug in git-tensor; please report it with the output of \`git tensor doctor\`.`;
}

export function exitCodeOf(err: unknown): ExitCode {
  return isUserError(err) ? err.exitCode : ExitCode.internal;
}
