/**
 * Flags of the bench scripts, parsed by yargs like the CLI: `--name value` for each key of
 * `defaults` (strings, as the scripts pass them on to `flowtune bench ...`), `--help`, and an
 * error on an unknown flag.
 */
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
