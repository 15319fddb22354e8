import type { Argv, CommandModule } from 'yargs';
import { existsSync, statSync } from 'node:fs';
import { UsageError } from '../core/errors.js';
import { writeReport } from '../report/index.js';

export const reportCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'report',
  describe: 'write report.html for a run folder (curves as inline SVG, samples, comparison); needs no network to view',
  builder: (y: Argv) =>
    y
      .option('run', { type: 'string', demandOption: true, describe: 'run folder (train or bench --out), or a folder of such runs' })
      .option('out', { type: 'string', describe: 'HTML file to write (default RUN/report.html)' })
      .option('json', { type: 'boolean', default: false, describe: 'last stdout line is one JSON object: file, charts, sections' }),
  handler: async (a) => {
    const dir = a.run as string;
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--run ${dir}: no such folder`);
    const r = await writeReport(dir, a.out as string | undefined);
    for (const w of r.warnings) process.stderr.write(`flowtune: warning: ${w}\n`);
    console.log(`wrote ${r.file}: ${r.charts.length} chart(s); sections ${r.sections.join(', ') || 'none'}`);
    if (a.json) console.log(JSON.stringify({ file: r.file, charts: r.charts, sections: r.sections, warnings: r.warnings }));
  },
};
