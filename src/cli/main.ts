// Owns the command line: declares every command with yargs, lazily imports its handler, prints the
// result, and is the one place that turns errors into messages and exit codes.

import yargs, { Argv } from 'yargs';
import { ExitCode, exitCodeOf, formatError, UsageError } from '../errors/index.js';
import { print, Printable } from './output.js';

interface Common {
  json?: boolean;
  quiet?: boolean;
}

/** Runs a handler and prints its result; errors propagate to main's single catch. */
function run<A extends Common>(load: (argv: A) => Promise<Printable | void>) {
  return async (argv: A): Promise<void> => {
    const result = await load(argv);
    if (result !== undefined) print(result, { json: !!argv.json, quiet: !!argv.quiet });
  };
}

function scopeOf(argv: { global?: boolean; system?: boolean }): 'local' | 'global' | 'system' {
  if (argv.global && argv.system) throw new UsageError('choose one of --local, --global, --system');
  return argv.global ? 'global' : argv.system ? 'system' : 'local';
}

function strategyOptions<T>(y: Argv<T>) {
  return y
    .option('strategy', { type: 'string', describe: 'fail, ours, theirs, base, average, task-arithmetic, ties, dare, dare-ties, slerp' })
    .option('density', { type: 'number', describe: 'ties/dare: fraction of each task vector kept' })
    .option('lambda', { type: 'number', describe: 'task-arithmetic/ties/dare: scale of the merged task vector' })
    .option('weights', { type: 'string', describe: 'average: ours,theirs weights, e.g. 0.7,0.3' })
    .option('seed', { type: 'number', describe: 'dare: PRNG seed' })
    .option('t', { type: 'number', describe: 'slerp: 0 = ours, 1 = theirs' });
}

function strategyParams(argv: { strategy?: string; density?: number; lambda?: number; weights?: string; seed?: number; t?: number }) {
  const kv: Record<string, string> = {};
  for (const key of ['strategy', 'density', 'lambda', 'weights', 'seed', 't'] as const) {
    if (argv[key] !== undefined) kv[key] = String(argv[key]);
  }
  return kv;
}

function build(args: string[]): Argv {
  return yargs(args)
    .scriptName('git tensor')
    .usage('$0 <command> [options]\n\nVersion control for model checkpoints with plain git.')
    .option('json', { type: 'boolean', describe: 'print data as JSON' })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'print nothing but errors' })
    .command('install', 'configure git to use git-tensor (filter, diff and merge drivers)',
      (y) => y.option('local', { type: 'boolean', describe: 'this repository (default)' })
        .option('global', { type: 'boolean', describe: 'your user config' })
        .option('system', { type: 'boolean', describe: 'the system config' }),
      run(async (argv) => {
        const { install, GIT_CONFIG } = await import('../commands/install.js');
        const r = await install({ scope: scopeOf(argv) });
        return { data: r, text: [`git-tensor installed in ${r.scope} git config:`, ...GIT_CONFIG.map(([k, v]) => `  ${k} = ${v}`)] };
      }))
    .command('uninstall', 'remove the git config written by install',
      (y) => y.option('local', { type: 'boolean' }).option('global', { type: 'boolean' }).option('system', { type: 'boolean' }),
      run(async (argv) => {
        const { uninstall } = await import('../commands/install.js');
        const r = await uninstall({ scope: scopeOf(argv) });
        return { data: r, text: [`git-tensor removed from ${r.scope} git config (${r.settings.length} section(s))`] };
      }))
    .command('track <patterns..>', 'store files matching the patterns with git-tensor (.gitattributes)',
      (y) => y.positional('patterns', { type: 'string', array: true, demandOption: true }),
      run(async (argv) => {
        const { track } = await import('../commands/track.js');
        const r = await track({ patterns: argv.patterns as string[] });
        return { data: r, text: [...r.added.map((p) => `Tracking ${p}`), ...r.already.map((p) => `${p} already tracked`)] };
      }))
    .command('untrack <patterns..>', 'stop storing files matching the patterns with git-tensor',
      (y) => y.positional('patterns', { type: 'string', array: true, demandOption: true }),
      run(async (argv) => {
        const { untrack } = await import('../commands/track.js');
        const r = await untrack({ patterns: argv.patterns as string[] });
        const missing = (argv.patterns as string[]).filter((p) => !r.removed.includes(p));
        return { data: r, text: [...r.removed.map((p) => `Untracked ${p}`), ...missing.map((p) => `${p} was not tracked`)] };
      }))
    .command('ls [rev] [path]', 'list the tensors of tracked checkpoints at a revision (default HEAD)',
      (y) => y.positional('rev', { type: 'string' }).positional('path', { type: 'string' }),
      run(async (argv) => {
        const { ls } = await import('../commands/ls.js');
        return ls({ rev: argv.rev as string | undefined, path: argv.path as string | undefined });
      }))
    .command('show <spec>', 'describe one checkpoint version: <rev>:<path>',
      (y) => y.positional('spec', { type: 'string', demandOption: true }),
      run(async (argv) => {
        const { show } = await import('../commands/ls.js');
        return show({ spec: argv.spec as string });
      }))
    .command('du', 'logical size of the tracked history next to the bytes the store holds',
      (y) => y,
      run(async () => {
        const { du } = await import('../commands/du.js');
        return du({});
      }))
    .command('fsck', 'verify every object in the tensor store and every pointer at HEAD',
      (y) => y.option('all', { type: 'boolean', describe: 'check pointers of all refs, not only HEAD' }),
      run(async (argv) => {
        const { fsck } = await import('../commands/fsck.js');
        return fsck({ all: !!argv.all });
      }))
    .command('doctor', 'versions, configuration and the active kernel implementation',
      (y) => y,
      run(async () => {
        const { doctor } = await import('../commands/doctor.js');
        return doctor({});
      }))
    .command('conflicts', 'list unmerged checkpoints: per tensor, elements changed by each side and in conflict',
      (y) => y,
      run(async () => {
        const { conflicts } = await import('../commands/conflicts.js');
        return conflicts({});
      }))
    .command('resolve <path>', 'finish the merge of an unmerged checkpoint with a strategy, and stage it',
      (y) => strategyOptions(y.positional('path', { type: 'string', demandOption: true })
        .option('tensor', { type: 'string', describe: 'only tensors matching this glob (repeat the command for others)' }))
        .demandOption('strategy'),
      run(async (argv) => {
        const { resolve } = await import('../commands/resolve.js');
        return resolve({ path: argv.path as string, tensor: argv.tensor, settings: strategyParams(argv) });
      }))
    .command('merge-driver <base> <ours> <theirs> <path>', false,
      (y) => y.positional('base', { type: 'string' }).positional('ours', { type: 'string' }).positional('theirs', { type: 'string' })
        .positional('path', { type: 'string' }).option('marker-size', { type: 'number' }),
      run(async (argv) => {
        const { mergeDriver } = await import('../commands/merge-driver.js');
        return mergeDriver({ base: argv.base as string, ours: argv.ours as string, theirs: argv.theirs as string, path: argv.path as string });
      }))
    .command('filter-process', false, (y) => y, async () => {
      const { filterProcess } = await import('../commands/filter-process.js');
      await filterProcess();
    })
    .demandCommand(1, 'name a command; `git tensor --help` lists them')
    .strict()
    .help()
    .alias('h', 'help')
    .version(false)
    .wrap(110)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg, 'Run `git tensor --help` for usage.');
    });
}

/** Entry point of bin/git-tensor; the only function that exits the process. */
export async function main(args: string[]): Promise<void> {
  try {
    // git's protocol commands skip yargs and its start-up cost.
    if (args.length === 1 && args[0] === 'filter-process') {
      const { filterProcess } = await import('../commands/filter-process.js');
      await filterProcess();
      return;
    }
    await build(args).parseAsync();
    process.exitCode = process.exitCode ?? ExitCode.ok;
  } catch (err) {
    process.stderr.write(formatError(err) + '\n');
    process.exit(exitCodeOf(err));
  }
}
