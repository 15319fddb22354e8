import type { CommandModule } from 'yargs';
import { Hypergrid } from '../envs/hypergrid.js';
import { verifyTheorem } from '../softrl/theorem.js';
import { HYPERGRID_DEFAULTS, runHypergridBench, type Algo } from '../gfn/hypergrid-bench.js';
import { Progress } from './output.js';

/**
 * `npm start`: the default job. Until language-model fine-tuning lands it is a short tour of
 * the engine: the exact GFlowNet = soft-RL check, then two objectives (one GFlowNet, one
 * soft-RL) trained on a 4-D hypergrid and measured against the exact target distribution.
 */
export const demoCommand: CommandModule<object, { iterations: number }> = {
  command: 'demo',
  describe: 'the default job (npm start): a short tour on the hypergrid',
  builder: (y) => y.option('iterations', { type: 'number', default: 1000, describe: 'training iterations per objective' }),
  handler: async (a) => {
    const cfg = { ndim: 4, height: 8, reward: 'standard' as const };
    console.log('flowtune — GFlowNets and entropy-regularized RL, on Node.js\n');
    console.log(`1. Exact check on a ${cfg.height}^${cfg.ndim} hypergrid: soft value iteration on the MDP of DESIGN.md (M) vs the flow recursion`);
    const r = verifyTheorem(new Hypergrid(cfg), { policies: 3, seed: 0 });
    console.log(`   log Z = ${r.logZFlow.toFixed(6)} (Z = ${Math.exp(r.logZFlow).toFixed(3)}); max |V* − log F| = ${r.maxAbsVMinusLogF.toExponential(1)};`);
    console.log(`   softmax(Q*) samples R/Z exactly (TV ${r.tvSoftOptimal.toExponential(1)}); V^π(s0) = log Z − KL holds to ${r.valueIdentityMaxError.toExponential(1)}\n`);
    console.log(`2. Training samplers for R on the same grid (${a.iterations} iterations × 16 trajectories each):`);
    for (const algo of ['tb', 'mdqn'] as Algo[]) {
      const progress = new Progress(a.iterations, `   ${algo}`);
      const s = await runHypergridBench(
        { ...HYPERGRID_DEFAULTS, ...cfg, algo, iterations: a.iterations, evalEvery: a.iterations },
        { onIteration: (it, loss) => progress.update(it, `loss ${loss.toFixed(4)}`) },
      );
      progress.stop();
      const name = algo === 'tb' ? 'Trajectory balance (GFlowNet)' : 'Munchausen-DQN (soft RL)     ';
      console.log(
        `   ${name}  exact TV to R/Z ${s.tvExact.toFixed(3)}  log Z ${s.logZ?.toFixed(3)} (true ${s.logZTrue.toFixed(3)})  ${s.itPerSec.toFixed(0)} it/s`,
      );
    }
    console.log('\n   TV is ½·Σ|P_θ(x) − R(x)/Z| over all 4096 states, computed exactly by dynamic programming.');
    console.log('   Next: `npx flowtune bench hypergrid --algo subtb --iterations 2000`, `npx flowtune verify theorem --help`.');
  },
};
