import yargs, { type Argv, type CommandModule } from 'yargs';
import { UsageError, ioErrorLine, isEnvIoError } from '../core/errors.js';
import { removeCreatedEmptyDirs } from '../core/io.js';
import { releaseRunLocks } from '../core/lock.js';
import { infoCommand } from './info.js';
import { modelCommand } from './model.js';
import { benchCommand } from './bench.js';
import { verifyCommand } from './verify.js';
import { demoCommand } from './demo.js';
import { trainCommand } from './train.js';
import { sampleCommand } from './sample.js';
import { evalCommand } from './eval.js';
import { compareCommand } from './compare.js';
import { reportCommand } from './report.js';
import { exportCommand } from './export.js';
import { moleculesCommand } from './molecules.js';

/** Every subcommand lives in its own file and is registered here. */
const commands: CommandModule<any, any>[] = [
  infoCommand,
  modelCommand,
  benchCommand,
  verifyCommand,
  demoCommand,
  trainCommand,
  sampleCommand,
  reportCommand,
  evalCommand,
  compareCommand,
  exportCommand,
  moleculesCommand,
];

export function buildCli(argv: string[]): Argv {
  let cli = yargs(argv)
    .scriptName('flowtune')
    .strict()
    .demandCommand(1, 'name a command; see flowtune --help')
    .recommendCommands()
    .help()
    .version(false)
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
  for (const c of commands) cli = cli.command(c);
  return cli;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli(argv).parseAsync();
  } catch (err) {
    exitWithError(err);
  }
}

export function exitWithError(err: unknown): never {
  const e = err as Error & { exitCode?: number };
  // a full disk, a read-only or unwritable path is the user's environment: one line naming the path, exit 2
  const ioProblem = !(e instanceof UsageError) && isEnvIoError(e);
  const usageError = e instanceof UsageError || e?.name === 'YError' || ioProblem;
  const msg = ioProblem
    ? ioErrorLine(syscallVerb((e as NodeJS.ErrnoException).syscall), (e as NodeJS.ErrnoException).path, e as NodeJS.ErrnoException)
    : (e?.message ?? String(err)).split('\n')[0];
  process.stderr.write(`flowtune: ${usageError ? '' : 'error: '}${msg}\n`);
  if (process.env.FLOWTUNE_DEBUG && e?.stack) process.stderr.write(e.stack + '\n');
  // a failed command leaves no lock and no empty folder it created behind
  releaseRunLocks();
  removeCreatedEmptyDirs();
  process.exit(usageError ? 2 : (e?.exitCode ?? 1));
}

function syscallVerb(syscall: string | undefined): string {
  if (!syscall) return 'access';
  if (/^(open|write|rename|mkdir|unlink|rmdir|link|copyfile|ftruncate|fsync|close)/.test(syscall))
    return syscall.startsWith('open') ? 'open' : 'write';
  return syscall.startsWith('read') || syscall === 'scandir' || syscall === 'stat' ? 'read' : syscall;
}
