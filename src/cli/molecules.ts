import type { Argv, CommandModule } from 'yargs';
import { readFileSync } from 'node:fs';
import { UsageError, usage } from '../core/errors.js';
import { numArg } from './args.js';
import { SehScorer } from '../envs/seh-env.js';
import { sehLogReward } from '../envs/seh-proxy.js';
import type { BlockState } from '../envs/seh-blocks.js';

/** One block state per line → its canonical SMILES, sEH proxy score and reward R = (max(proxy, 0.1)/8)^β. */
const score: CommandModule<object, Record<string, unknown>> = {
  command: 'score',
  describe:
    'score block states with the sEH proxy: one JSON object per line with blockidxs, jbonds, stems (as in data/seh/reference_molecules.jsonl)',
  builder: (y: Argv) =>
    y
      .option('input', { type: 'string', demandOption: true, describe: 'JSONL file of block states' })
      .option('beta', { type: 'string', default: '10', describe: 'reward exponent β' })
      .option('json', { type: 'boolean', default: false, describe: 'one JSON line per state (smiles, proxy, reward); otherwise a table' }),
  handler: async (a) => {
    const beta = numArg('beta', a.beta, 0, Infinity, { exclusiveMin: true });
    const file = a.input as string;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      throw new UsageError(`${file}: cannot read`);
    }
    const lines = text
      .split('\n')
      .map((l, i) => [l.trim(), i + 1] as const)
      .filter(([l]) => l !== '');
    usage(lines.length > 0, `${file}: no block states`);
    const states = lines.map(([l, n]) => {
      let o: Partial<BlockState>;
      try {
        o = JSON.parse(l);
      } catch {
        throw new UsageError(`${file}:${n}: not valid JSON`);
      }
      usage(
        o && Array.isArray(o.blockidxs) && Array.isArray(o.jbonds) && Array.isArray(o.stems ?? []),
        `${file}:${n}: needs arrays blockidxs, jbonds and stems`,
      );
      return { s: { blockidxs: o.blockidxs!, jbonds: o.jbonds!, stems: o.stems ?? [] } as BlockState, n };
    });
    const scorer = await SehScorer.create();
    for (const { s, n } of states) scorer.validate(s, `${file}:${n}`);
    for (const { s, n } of states) {
      let r;
      try {
        r = scorer.score(s);
      } catch (e) {
        throw new UsageError(`${file}:${n}: ${(e as Error).message}`);
      }
      const reward = Math.exp(sehLogReward(r.proxy, beta));
      if (a.json) console.log(JSON.stringify({ smiles: r.smiles, proxy: r.proxy, reward }));
      else console.log(`${r.smiles}\t${r.proxy.toFixed(6)}\t${reward.toExponential(6)}`);
    }
  },
};

export const moleculesCommand: CommandModule = {
  command: 'molecules <action>',
  describe: 'the sEH block-molecule task: score block states with the pretrained proxy',
  builder: (y: Argv) => y.command(score).demandCommand(1, 'name an action: score'),
  handler: () => {},
};
