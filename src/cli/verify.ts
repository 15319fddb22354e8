import type { Argv, CommandModule } from 'yargs';
import { Hypergrid } from '../envs/hypergrid.js';
import { hypergridLogZ } from '../envs/hypergrid-oracle.js';
import { verifyTheorem } from '../softrl/theorem.js';
import { choiceArg, intArg, numArg } from './args.js';
import { UsageError } from '../core/errors.js';

const theorem: CommandModule<object, Record<string, unknown>> = {
  command: 'theorem',
  describe: 'check GFlowNet = soft RL (docs/design.md eq. (M)) exactly on a hypergrid',
  builder: (y: Argv) =>
    y
      .option('ndim', { type: 'string', default: '2' })
      .option('height', { type: 'string', default: '8' })
      .option('reward', { type: 'string', default: 'standard', describe: 'standard|hard' })
      .option('policies', { type: 'string', default: '5', describe: 'random policies for the value identity' })
      .option('seed', { type: 'string', default: '0' })
      .option('json', { type: 'boolean', default: false }),
  handler: (a) => {
    const cfg = {
      ndim: intArg('ndim', a.ndim, 1, 12),
      height: intArg('height', a.height, 2, 1000),
      reward: choiceArg('reward', a.reward, ['standard', 'hard'] as const),
    };
    if (cfg.height ** cfg.ndim > 2_000_000)
      throw new UsageError(`a ${cfg.height}^${cfg.ndim} grid is too large to enumerate here (limit 2,000,000 states)`);
    const t0 = performance.now();
    const r = verifyTheorem(new Hypergrid(cfg), { policies: intArg('policies', a.policies, 1), seed: intArg('seed', a.seed, 0) });
    const report = { ...cfg, logZTrue: hypergridLogZ(cfg), ...r, seconds: (performance.now() - t0) / 1000 };
    const e = (v: number) => v.toExponential(2);
    console.log(
      [
        `hypergrid ${cfg.ndim}-D H=${cfg.height} (${cfg.reward}), ${r.states} states, uniform P_B`,
        `  log Z: closed form ${report.logZTrue.toFixed(6)}, flow recursion ${r.logZFlow.toFixed(6)}, V*(s0) ${r.logZSoftValue.toFixed(6)} (${r.sweeps} sweeps)`,
        `  max |V* − log F| = ${e(r.maxAbsVMinusLogF)}, max |Q* − log F(s→s')| = ${e(r.maxAbsQMinusLogEdgeFlow)}`,
        `  TV(softmax(Q*) terminal distribution, R/Z) = ${e(r.tvSoftOptimal)}`,
        `  V^π(s0) = log Z − KL(q^π‖P_B): max error ${e(r.valueIdentityMaxError)} over ${r.policies} random policies; KL(q^π‖P_B) − KL(d^π‖R/Z) ≥ ${e(r.minKlGap)}`,
      ].join('\n'),
    );
    if (a.json) console.log(JSON.stringify(report));
  },
};

const posterior: CommandModule<object, Record<string, unknown>> = {
  command: 'posterior',
  describe: 'train on an enumerable Z space and measure the exact TV to the posterior p(Z | X, Y)',
  builder: (y: Argv) =>
    y
      .option('config', { type: 'string', demandOption: true, describe: 'e.g. configs/posterior-check.yaml' })
      .option('set', { type: 'string', array: true, default: [], describe: 'override a key: --set objective=mdqn' })
      .option('json', { type: 'boolean', default: false }),
  handler: async (a) => {
    const { readTrainConfig } = await import('../finetune/run.js');
    const { LmTrainer } = await import('../finetune/trainer.js');
    const { exactPosterior } = await import('../finetune/posterior.js');
    const { Progress } = await import('../core/io.js');
    const cfg = readTrainConfig(a.config as string, a.set as string[]);
    const t0 = performance.now();
    const trainer = await LmTrainer.create(cfg);
    const before = await exactPosterior(trainer);
    const progress = new Progress(cfg.train.steps, `posterior ${cfg.objective}`);
    let logZ = NaN;
    while (trainer.step < cfg.train.steps) {
      const m = await trainer.trainStep();
      logZ = m.logZ;
      progress.update(m.step, `loss ${m.loss.toFixed(4)} | log Z ${m.logZ.toFixed(3)}`);
    }
    progress.stop();
    const r = await exactPosterior(trainer);
    const report = {
      objective: cfg.objective,
      seed: cfg.seed,
      sequences: r.sequences,
      tv: r.tv,
      tvBefore: before.tv,
      logZ,
      logZTrue: r.logZTrue,
      klPosteriorPrior: r.klPosteriorPrior,
      klPosteriorPolicy: r.klPosteriorPolicy,
      steps: trainer.step,
      seconds: (performance.now() - t0) / 1000,
    };
    console.log(
      [
        `posterior check: ${r.sequences} sequences Z, ${cfg.objective}, ${trainer.step} steps, seed ${cfg.seed}`,
        `  exact TV(policy, posterior) ${r.tv.toFixed(4)}  (base model before training: ${before.tv.toFixed(4)})`,
        `  log Z: learned ${logZ.toFixed(4)}, exact ${r.logZTrue.toFixed(4)};  KL(posterior ‖ prior) ${r.klPosteriorPrior.toFixed(3)}, KL(posterior ‖ policy) ${r.klPosteriorPolicy.toFixed(4)}`,
        `  ${report.seconds.toFixed(1)} s`,
      ].join('\n'),
    );
    if (a.json) console.log(JSON.stringify(report));
  },
};

const langevin: CommandModule<object, Record<string, unknown>> = {
  command: 'langevin',
  describe: 'ULA and MALA on a Gaussian against the closed-form laws (the continuous MCMC baselines)',
  builder: (y: Argv) =>
    y
      .option('dim', { type: 'string', default: '5' })
      .option('chains', { type: 'string', default: '2000' })
      .option('step', { type: 'string', default: '0.5', describe: 'step size h' })
      .option('steps', { type: 'string', default: '300' })
      .option('seed', { type: 'string', default: '0' })
      .option('json', { type: 'boolean', default: false }),
  handler: async (a) => {
    const { langevinCheck } = await import('../mcmc/langevin.js');
    const r = langevinCheck({
      dim: intArg('dim', a.dim, 1, 1000),
      chains: intArg('chains', a.chains, 2, 1_000_000),
      step: numArg('step', a.step, 1e-6, 1.9),
      steps: intArg('steps', a.steps, 1, 1_000_000),
      seed: intArg('seed', a.seed, 0),
    });
    const f = (m: { mean: number; variance: number }) => `mean ${m.mean.toFixed(4)}, variance ${m.variance.toFixed(4)}`;
    console.log(
      [
        `N(0, I_${r.dim}) from x0 = 3, ${r.chains} chains × ${r.steps} steps of h = ${r.step} (t = ${(r.step * r.steps).toFixed(2)})`,
        `  Langevin diffusion (exact)  ${f(r.exact)}`,
        `  ULA, closed form            ${f(r.ulaExact)}`,
        `  ULA, sampled                ${f(r.ula)}`,
        `  MALA, sampled               ${f(r.mala)}  (acceptance ${r.mala.acceptanceRate.toFixed(3)})`,
      ].join('\n'),
    );
    if (a.json) console.log(JSON.stringify(r));
  },
};

export const verifyCommand: CommandModule = {
  command: 'verify <check>',
  describe: 'exact checks (theorem, posterior, langevin)',
  builder: (y: Argv) =>
    y.command(theorem).command(posterior).command(langevin).demandCommand(1, 'name a check: theorem, posterior or langevin'),
  handler: () => {},
};
