// Owns the command line: declares every command with yargs, lazily imports its handler, prints the
// result, and is the one place that turns errors into messages and exit codes.

import yargs, { Argv } from 'yargs';
import { ExitCode, exitCodeOf, formatError, UsageError } from '../errors/index.js';
import type { Printable } from '../commands/printable.js';
import { print } from './output.js';

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
    .option('strategy', { type: 'string', describe: 'fail, ours, theirs, base, average, task-arithmetic, ties, dare, dare-ties, slerp, protect; resolve: auto' })
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
        const { hookCall } = await import('../commands/hooks.js');
        const r = await install({ scope: scopeOf(argv) });
        const text = [`git-tensor installed in ${r.scope} git config:`, ...GIT_CONFIG.map(([k, v]) => `  ${k} = ${v}`)];
        const foreign = r.hooks.filter((h) => h.state === 'foreign');
        for (const h of r.hooks) {
          text.push(h.state === 'foreign'
            ? `  hook ${h.name}: NOT INSTALLED: ${h.path} is not git-tensor's; add this line to it: ${hookCall(h.name)}`
            : `  hook ${h.name}: ${h.path}${h.state === 'foreign-calls-us' ? ' (your hook, which calls git-tensor)' : ''}`);
        }
        return { data: r, text, exitCode: foreign.length ? 1 : 0 };
      }))
    .command('uninstall', 'remove the git config written by install',
      (y) => y.option('local', { type: 'boolean' }).option('global', { type: 'boolean' }).option('system', { type: 'boolean' }),
      run(async (argv) => {
        const { uninstall } = await import('../commands/install.js');
        const r = await uninstall({ scope: scopeOf(argv) });
        return { data: r, text: [`git-tensor removed from ${r.scope} git config (${r.settings.length} section(s))`] };
      }))
    .command('hook <name> [args..]', false,
      (y) => y.positional('name', { type: 'string', demandOption: true }).positional('args', { type: 'string', array: true }),
      run(async (argv) => {
        const { runHook } = await import('../commands/hooks.js');
        return runHook(argv.name as string, (argv.args as string[] | undefined) ?? []);
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
    .command('gc', 'merge packs, drop unreachable objects past a grace period, remove leftovers of killed commands',
      (y) => y.option('prune', { type: 'string', describe: 'drop unreachable objects older than this (default 2.weeks.ago; "now")' }),
      run(async (argv) => {
        const { gc, parsePrune } = await import('../commands/gc.js');
        return gc({ pruneSeconds: parsePrune(argv.prune) });
      }))
    .command('doctor', 'versions, configuration and the active kernel implementation',
      (y) => y,
      run(async () => {
        const { doctor } = await import('../commands/doctor.js');
        return doctor({});
      }))
    .command('fetch [revs..]', 'download the tensor objects of revisions (default HEAD) from a remote',
      (y) => y.positional('revs', { type: 'string', array: true, describe: 'revisions whose checkpoints to fetch' })
        .option('all', { type: 'boolean', describe: 'every checkpoint version reachable from any ref' })
        .option('remote', { type: 'string', describe: 'remote to fetch from (default: the branch\'s remote, else origin)' }),
      run(async (argv) => {
        const { fetch } = await import('../commands/fetch.js');
        return fetch({ revs: (argv.revs as string[] | undefined) ?? [], all: !!argv.all, remote: argv.remote, quiet: !!argv.quiet });
      }))
    .command('checkout [paths..]', 'write the tracked checkpoints that the working tree holds as pointers (large files a git command left, GIT_TENSOR_SKIP_SMUDGE)',
      (y) => y.positional('paths', { type: 'string', array: true, describe: 'limit to these paths (default: the whole working tree)' }),
      run(async (argv) => {
        const { checkout } = await import('../commands/checkout.js');
        const r = await checkout({ paths: (argv.paths as string[] | undefined) ?? [] });
        return {
          data: r,
          text: [
            ...r.written.map((p) => `wrote ${p}`),
            ...r.changed.map((p) => `left ${p}: changed while being written`),
            ...(r.refreshed ? [] : ['git index not refreshed (another git command holds it); `git status` will refresh it']),
          ],
        };
      }))
    .command('conflicts', 'list unmerged checkpoints: per tensor, elements changed by each side and in conflict',
      (y) => y,
      run(async () => {
        const { conflicts } = await import('../commands/conflicts.js');
        return conflicts({});
      }))
    .command('resolve <path>', 'finish the merge of an unmerged checkpoint with a strategy (auto: the best that keeps the protected probes), and stage it',
      (y) => strategyOptions(y.positional('path', { type: 'string', demandOption: true })
        .option('tensor', { type: 'string', describe: 'only tensors matching this glob (repeat the command for others)' })
        .option('keep-ours', { type: 'string', array: true, describe: 'take tensors matching this glob whole from ours (e.g. the modules a merge guard report names)' })
        .option('guard', { type: 'boolean', default: true, describe: '--no-guard: accept a result that drops a protected probe' })),
      run(async (argv) => {
        const { resolve } = await import('../commands/resolve.js');
        return resolve({ path: argv.path as string, tensor: argv.tensor, settings: strategyParams(argv), keepOurs: argv.keepOurs as string[] | undefined, noGuard: argv.guard === false });
      }))
    .command('verify [rev]', 'run the protected probes on a version against its first parent (exit 1 on regression): for CI and hooks',
      (y) => y.positional('rev', { type: 'string', describe: 'the version to check (default HEAD)' })
        .option('against', { type: 'string', describe: 'the version it must not regress from (default: its first parent; HEAD with --staged)' })
        .option('staged', { alias: 'index', type: 'boolean', describe: 'check the index (what the next commit records)' })
        .option('path', { type: 'string', describe: 'only this checkpoint' }),
      run(async (argv) => {
        const { verify } = await import('../commands/verify.js');
        return verify({ rev: argv.rev as string | undefined, against: argv.against, staged: !!argv.staged, path: argv.path });
      }))
    .command('diff [revs..]', 'explain what changed in tracked checkpoints: HEAD vs working tree, <rev> vs working tree, or <rev> <rev> (-- <path>...)',
      (y) => y.positional('revs', { type: 'string', array: true, describe: 'zero, one or two revisions (A..B and A...B too), then -- <path>...' })
        .option('cached', { alias: 'staged', type: 'boolean', describe: 'compare with the index instead of the working tree' })
        .option('top', { type: 'number', describe: 'tensor rows listed per checkpoint (default 20; 0 = all)' })
        .option('html', { type: 'string', describe: 'also write a self-contained HTML report to this file' })
        .option('tokenizer', { type: 'string', describe: 'tokenizer.json for the token view (default: the one beside the checkpoint)' })
        .option('probes', { type: 'string', describe: 'add a behaviour section from this probes file (no value: .gittensor [probe] file); put it last or use --probes=<file>' }),
      run(async (argv) => {
        const { diff } = await import('../commands/diff.js');
        const result = await diff({
          revs: (argv.revs as string[] | undefined) ?? [], paths: argv._.slice(1).map(String), cached: !!argv.cached,
          top: argv.top as number | undefined, html: argv.html as string | undefined, tokenizer: argv.tokenizer as string | undefined,
        });
        if (argv.probes === undefined) {
          // Without probes, a data-free line: the directions of the token matrices' change, as tokens.
          const { addDirections } = await import('../commands/probe-diff.js');
          return addDirections(result, { revs: (argv.revs as string[] | undefined) ?? [], cached: !!argv.cached });
        }
        const { diffWithBehaviour } = await import('../commands/probe-diff.js');
        return diffWithBehaviour(result, { revs: (argv.revs as string[] | undefined) ?? [], cached: !!argv.cached, probes: argv.probes as string, paths: argv._.slice(1).map(String) });
      }))
    .command('log [path]', 'one line per commit that changed a tracked checkpoint, summarising the change',
      (y) => y.positional('path', { type: 'string', describe: 'only this checkpoint (or folder)' })
        .option('max-count', { alias: 'n', type: 'number', describe: 'look at this many commits at most' })
        .option('rev', { type: 'string', describe: 'start from this revision (default HEAD)' })
        .option('probes', { type: 'string', describe: 'one row per commit with each probe\'s value; the positional is then a revision range (no value: .gittensor [probe] file)' })
        .option('checkpoint', { type: 'string', describe: 'with --probes: the checkpoint to probe when commits hold several' })
        .option('html', { type: 'string', describe: 'with --probes: also write an HTML timeline of the probes to this file' }),
      run(async (argv) => {
        if (argv.probes !== undefined) {
          const { logProbes } = await import('../commands/probe.js');
          return logProbes({ range: argv.path as string | undefined, probes: argv.probes as string, maxCount: argv.maxCount as number | undefined, path: argv.checkpoint as string | undefined, html: argv.html as string | undefined });
        }
        const { log } = await import('../commands/log.js');
        return log({ path: argv.path as string | undefined, maxCount: argv.maxCount as number | undefined, rev: argv.rev as string | undefined });
      }))
    .command('probe [revs..]', 'run model versions on probes: target log-probabilities, ranks, top-5, chosen statements, text loss',
      (y) => y.positional('revs', { type: 'string', array: true, describe: 'revisions, or <rev>:<checkpoint> (default HEAD)' })
        .option('path', { type: 'string', describe: 'probe this checkpoint file (or shard index) on disk instead' })
        .option('probes', { type: 'string', describe: 'probes JSONL file (default: .gittensor [probe] file)' })
        .option('generate', { type: 'number', describe: 'add the greedy continuation of each prompt, this many tokens (causal LMs)' })
        .option('adapter', { type: 'string', array: true, describe: 'probe base + this PEFT LoRA adapter (folder or adapter_model.safetensors); repeat for several' }),
      run(async (argv) => {
        const { probe } = await import('../commands/probe.js');
        return probe({ revs: (argv.revs as string[] | undefined) ?? [], path: argv.path, probes: argv.probes, generate: argv.generate as number | undefined, adapters: argv.adapter as string[] | undefined });
      }))
    .command('fold <adapters..>', 'write base + the adapters\' ΔW = B·A·alpha/r as a new version of the base checkpoint (docs/adapters.md)',
      (y) => strategyOptions(y.positional('adapters', { type: 'string', array: true, describe: 'PEFT LoRA adapters: folders or adapter_model.safetensors files' })
        .option('base', { type: 'string', describe: 'the base checkpoint (default: adapter_config.json base_model_name_or_path, or .gittensor [adapter] base)' })
        .option('output', { type: 'string', describe: 'where to write the result (default: over the base, ready to `git add`)' })),
      run(async (argv) => {
        const { fold } = await import('../commands/fold.js');
        return fold({ adapters: argv.adapters as string[], base: argv.base, output: argv.output, settings: strategyParams(argv) });
      }))
    .command('diff-driver <path> [oldFile] [oldHex] [oldMode] [newFile] [newHex] [newMode] [rest..]', false,
      (y) => ['path', 'oldFile', 'oldHex', 'oldMode', 'newFile', 'newHex', 'newMode'].reduce((a, k) => a.positional(k, { type: 'string' }), y)
        .positional('rest', { type: 'string', array: true }),
      run(async (argv) => {
        const { diffDriver } = await import('../commands/diff-driver.js');
        return diffDriver({
          path: argv.path as string, oldFile: argv.oldFile as string | undefined, oldHex: argv.oldHex as string | undefined,
          oldMode: argv.oldMode as string | undefined, newFile: argv.newFile as string | undefined, newHex: argv.newHex as string | undefined,
          newMode: argv.newMode as string | undefined, rest: (argv.rest as string[] | undefined) ?? [],
          emit: (line) => process.stdout.write(line + '\n'),
        });
      }))
    .command('textconv <file>', false,
      (y) => y.positional('file', { type: 'string' }),
      run(async (argv) => {
        const { textconv } = await import('../commands/diff-driver.js');
        return textconv({ file: argv.file as string });
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
