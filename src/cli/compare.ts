import type { Argv, CommandModule } from 'yargs';
import { basename, join } from 'node:path';
import { UsageError } from '../core/errors.js';
import { formatPaired, formatTable, formatTimes, parseSeeds, readCompareConfig, runCompare } from '../baselines/compare.js';

export const compareCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'compare',
  describe: 'train and evaluate every method of a comparison config over seeds; print one table (also comparison.csv/json, report.html)',
  builder: (y: Argv) =>
    y
      .option('config', { type: 'string', describe: 'comparison config (configs/compare-*.yaml)' })
      .option('set', { type: 'string', array: true, default: [], describe: 'override a key of the comparison config (e.g. eval.limit=20)' })
      .option('seeds', { type: 'string', describe: 'comma-separated seeds, e.g. 0,1,2 (overrides the config key seeds)' })
      .option('out', { type: 'string', describe: 'output folder (default runs/<config name>)' })
      .option('resume', {
        type: 'boolean',
        default: false,
        describe:
          'continue a killed comparison in --out: finished method × seed cells are read back, a cut-off training continues from its checkpoint',
      })
      .option('reeval', {
        type: 'boolean',
        default: false,
        describe:
          'as --resume, but the eval section may differ (e.g. --set eval.limit=500): finished cells keep their training and are evaluated again with the new eval settings',
      })
      .option('quiet', { type: 'boolean', default: false, describe: 'no progress output' })
      .option('json', { type: 'boolean', default: false, describe: 'last stdout line is the comparison as JSON' }),
  handler: async (a) => {
    if (!a.config) throw new UsageError('give --config FILE (e.g. configs/compare-arithmetic.yaml)');
    const file = a.config as string;
    const seeds = a.seeds === undefined ? undefined : parseSeeds(String(a.seeds));
    const c = readCompareConfig(file, (a.set as string[]) ?? [], seeds);
    const out = (a.out as string | undefined) ?? join('runs', basename(file).replace(/\.ya?ml$/, ''));
    const quiet = a.quiet as boolean;
    const cmp = await runCompare(file, c, out, {
      quiet,
      resume: a.resume as boolean,
      reeval: a.reeval as boolean,
      log: quiet ? undefined : (s) => process.stderr.write(s + '\n'),
    });
    console.log(
      `${c.task}: ${c.eval.samples} samples per item, ${cmp.rows.length} methods × seeds ${cmp.seeds.join(', ')} (mean ± sd over seeds)`,
    );
    console.log(formatTable(cmp));
    const paired = formatPaired(cmp);
    if (paired) console.log(paired);
    console.log(formatTimes(cmp));
    console.log(`written: ${join(out, 'comparison.csv')}, ${join(out, 'comparison.json')}, ${join(out, 'report.html')}`);
    if (a.json) console.log(JSON.stringify(cmp));
  },
};
