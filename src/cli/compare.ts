import type { Argv, CommandModule } from 'yargs';
import { basename, join } from 'node:path';
import { UsageError } from '../core/errors.js';
import { formatTable, readCompareConfig, runCompare } from '../baselines/compare.js';

export const compareCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'compare',
  describe: 'train and evaluate every method of a comparison config; print one table (also comparison.csv/json)',
  builder: (y: Argv) =>
    y
      .option('config', { type: 'string', describe: 'comparison config (configs/compare-*.yaml)' })
      .option('set', { type: 'string', array: true, default: [], describe: 'override a key of the comparison config (e.g. eval.limit=20)' })
      .option('out', { type: 'string', describe: 'output folder (default runs/<config name>)' })
      .option('quiet', { type: 'boolean', default: false, describe: 'no progress output' })
      .option('json', { type: 'boolean', default: false, describe: 'last stdout line is the comparison as JSON' }),
  handler: async (a) => {
    if (!a.config) throw new UsageError('give --config FILE (e.g. configs/compare-arithmetic.yaml)');
    const file = a.config as string;
    const c = readCompareConfig(file, (a.set as string[]) ?? []);
    const out = (a.out as string | undefined) ?? join('runs', basename(file).replace(/\.ya?ml$/, ''));
    const quiet = a.quiet as boolean;
    const cmp = await runCompare(file, c, out, { quiet, log: quiet ? undefined : (s) => process.stderr.write(s + '\n') });
    console.log(`${c.task}: ${c.eval.samples} samples per item, ${cmp.rows.length} methods (${cmp.seconds.toFixed(0)} s)`);
    console.log(formatTable(cmp));
    console.log(`written: ${join(out, 'comparison.csv')}, ${join(out, 'comparison.json')}`);
    if (a.json) console.log(JSON.stringify(cmp));
  },
};
