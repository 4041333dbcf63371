// Writes man/man1/git-tensor.1 from the CLI's own --help texts, so `git tensor --help` (which git turns
// into `man git-tensor`) shows the same text as `git-tensor --help`. man finds it through bin/ on PATH.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = (args) => execFileSync(process.execPath, [`${root}/bin/git-tensor`, ...args], { encoding: 'utf8' });
const escape = (text) => text.replace(/\\/g, '\\e').replace(/^([.'])/gm, '\\&$1');
const top = cli(['--help']);
const commands = [...top.matchAll(/^ {2}git tensor ([a-z-]+)/gm)].map((m) => m[1]);
const sections = commands.map((c) => `.SS git tensor ${c}\n.nf\n${escape(cli([c, '--help']))}.fi\n`);
const page = `.TH GIT-TENSOR 1 "" "git-tensor" "Git Manual"
.SH NAME
git-tensor \\- version control for model checkpoints with plain git
.SH SYNOPSIS
.nf
${escape(top)}.fi
.SH COMMANDS
${sections.join('')}.SH SEE ALSO
README.md and docs/ in the git-tensor repository.
`;
mkdirSync(`${root}/man/man1`, { recursive: true });
writeFileSync(`${root}/man/man1/git-tensor.1`, page);
