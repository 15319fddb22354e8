/**
 * Flags of the bench scripts (and the one way they run the CLI), parsed by yargs like the CLI: `--name value` for each key of
 * `defaults` (strings, as the scripts pass them on to `flowtune bench ...`), `--help`, and an
 * error on an unknown flag.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';

export function benchFlags<K extends string>(
  usage: string,
  defaults: Record<K, string>,
  booleans: readonly string[] = [],
): Record<K, string> & Record<string, unknown> {
  let y = yargs(hideBin(process.argv)).usage(usage).strict().help();
  for (const [k, v] of Object.entries(defaults) as [K, string][]) y = y.option(k, { type: 'string', default: v });
  for (const k of booleans) y = y.option(k, { type: 'boolean', default: false });
  return y.parseSync() as unknown as Record<K, string> & Record<string, unknown>;
}

const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));

/**
 * Runs `flowtune <args> --json` in a child process (each measurement gets a fresh process, so
 * peak RSS and CPU time are its own) and returns the summary on its last stdout line.
 */
export function flowtuneJson<T>(args: string[]): T {
  const text = execFileSync(process.execPath, [cli, ...args, '--json'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    maxBuffer: 1 << 26,
  });
  return JSON.parse(text.trim().split('\n').pop()!) as T;
}
