import { encodeX } from '../lm/tokenizer.js';
import type { CommandModule } from 'yargs';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { Hypergrid } from '../envs/hypergrid.js';
import { verifyTheorem } from '../softrl/theorem.js';
import { HYPERGRID_DEFAULTS, runHypergridBench } from '../benchmarks/hypergrid.js';
import type { Algo } from '../benchmarks/build-trainer.js';
import { Progress } from '../core/io.js';
import { readTrainConfig, runTraining } from '../finetune/run.js';
import { LmTrainer } from '../finetune/trainer.js';
import { sampleZ } from '../finetune/rollout.js';
import { sample } from '../lm/sampler.js';
import { evalArithmeticFile } from '../tasks/arithmetic.js';
import { trainMethod } from '../baselines/methods.js';
import type { Decoder } from '../tasks/decode.js';

const DEMO_CONFIG = 'configs/arithmetic-tiny.yaml';

/**
 * `npm start`: the default job. (1) the exact GFlowNet = soft-RL check on a hypergrid;
 * (2) SFT of the shipped arithmetic LM with room to learn, then GFlowNet fine-tuning (TB,
 * calculator tool) from it on answer-only questions, rationales sampled for held-out questions
 * and base → SFT → GFlowNet accuracy on them. Without the shipped model it trains two
 * hypergrid samplers instead.
 */
export const demoCommand: CommandModule<object, { steps: number; iterations: number }> = {
  command: 'demo',
  describe: 'the default job (npm start): exact check, then a short fine-tuning run and samples',
  builder: (y) =>
    y
      .option('steps', { type: 'number', default: 1000, describe: 'steps of each LM run (SFT, then TB from it)' })
      .option('iterations', { type: 'number', default: 1000, describe: 'hypergrid iterations (fallback without the shipped model)' }),
  handler: async (a) => {
    console.log('flowtune — fine-tune a language model to sample latent reasoning Z from p(Z | X, Y) as a GFlowNet\n');
    const cfg = { ndim: 4, height: 8, reward: 'standard' as const };
    console.log(
      `1. Exact check on a ${cfg.height}^${cfg.ndim} hypergrid: soft value iteration on the MDP of docs/design.md (M) vs the flow recursion`,
    );
    const r = verifyTheorem(new Hypergrid(cfg), { policies: 3, seed: 0 });
    console.log(
      `   log Z = ${r.logZFlow.toFixed(6)}; max |V* − log F| = ${r.maxAbsVMinusLogF.toExponential(1)}; softmax(Q*) samples R/Z (TV ${r.tvSoftOptimal.toExponential(1)});`,
    );
    console.log(`   V^π(s0) = log Z − KL(q^π ‖ P_B) holds to ${r.valueIdentityMaxError.toExponential(1)} for random policies\n`);
    if (existsSync(`${DEMO_MODEL}/onnx/model.onnx`)) await languageModelDemo(a.steps);
    else await hypergridDemo(a.iterations);
  },
};

/** The base model with room to learn (models/README.md) and the protocol's settings for it. */
const DEMO_MODEL = 'models/arith-sloppy';
const demoSets = (steps: number): string[] => [
  `model=${DEMO_MODEL}`,
  'z.maxLength=64',
  `train.steps=${steps}`,
  `train.checkpointEvery=${steps}`,
  `train.logEvery=${steps}`,
  `reward.temperature={start: 1.5, end: 1.0, horizon: ${steps}}`,
  `exploration.epsilon={start: 0.05, end: 0.0, horizon: ${steps}}`,
];

async function languageModelDemo(steps: number): Promise<void> {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const runDir = join('runs', `demo-${stamp}`);
  const sftDir = join(runDir, 'sft');
  const gfnDir = join(runDir, 'gfn-tb');
  mkdirSync(sftDir, { recursive: true });
  mkdirSync(gfnDir, { recursive: true });
  console.log(`2. Fine-tuning ${DEMO_MODEL} (frozen; a base model whose prior half knows how to chain) with a LoRA-style head.`);
  console.log(`   X = a question, Z = a worked rationale (a calculator completes each "a op b ="), Y = ". The answer is N."`);
  console.log(`   The reward R(Z) = p_LM(X Z Y): rationales that make the known answer likely are sampled more often.`);
  console.log(`   (a) SFT on the 50 worked rationales of data/arithmetic/train_50.json, ${steps} steps`);
  const sftCfg = readTrainConfig(DEMO_CONFIG, demoSets(steps));
  await trainMethod('sft', sftCfg, sftDir, { label: '   train sft' });
  console.log(`   (b) GFlowNet fine-tuning (trajectory balance) from the SFT head on the 1000 answer-only questions of`);
  console.log(
    `       data/arithmetic/pool_1000.json, ${steps} steps × ${sftCfg.train.batchSize} rationales (${DEMO_CONFIG}; run folder ${runDir})`,
  );
  const cfg = readTrainConfig(DEMO_CONFIG, [...demoSets(steps), `adapter.init=${JSON.stringify(sftDir)}`]);
  writeFileSync(join(gfnDir, 'config.yaml'), YAML.stringify(cfg));
  const trainer = await LmTrainer.create(cfg);
  // the trainer starts at the SFT head (adapter.init): score base and SFT now, the GFlowNet after training
  const base: Decoder = { session: trainer.session, tok: trainer.tok, constraints: trainer.constraints };
  const limit = 50;
  const heldOut = async (dec: Decoder) =>
    (
      await evalArithmeticFile(dec, 'data/arithmetic/test_3op.json', {
        samples: 5,
        decode: { kind: 'sample', temperature: 1 },
        seed: 0,
        limit,
      })
    ).summary;
  const before = [
    ['base LM (no head)       ', await heldOut(base)],
    ['SFT                     ', await heldOut({ ...base, hook: trainer.adapter.policy() })],
  ] as const;
  const last = await runTraining(trainer, gfnDir, { label: '   train tb' });
  console.log(
    `   done: loss ${last?.loss.toFixed(3)}, mean log R ${last?.meanLogR.toFixed(2)}, learned log Z(X) ${last?.logZ.toFixed(2)}\n`,
  );

  console.log('3. Rationales sampled from the fine-tuned policy for held-out questions (then the base LM writes the answer):');
  const questions = ['Question: 7 + 2 - 5 = ? Answer:', 'Question: 3 - 8 + 6 - 1 = ? Answer:'];
  for (const q of questions) {
    const x = encodeX(trainer.tok, q);
    const zs = await sampleZ(trainer.session, trainer.tok, [x, x, x], {
      constraints: trainer.constraints,
      temperature: 1,
      policy: trainer.adapter.policy(),
      rng: trainer.rng,
    });
    const answers = await sample(
      trainer.session,
      zs.map((z) => [...x, ...z.tokens]),
      { maxNewTokens: 24, temperature: 0, stopTokenIds: trainer.tok.encode('\n'), keepHidden: false },
    );
    console.log(`   ${q}`);
    zs.forEach((z, i) => {
      const y = trainer.tok
        .decode(Array.from(answers.tokens.subarray(i * answers.steps, i * answers.steps + answers.lengths[i])), true)
        .trim();
      console.log(`     Z: ${JSON.stringify(trainer.tok.decode(z.tokens))}   →  ${y}`);
    });
  }
  console.log(
    `\n4. Held-out questions (first ${limit} of data/arithmetic/test_3op.json, 5 samples each, majority vote; the rationale is forced to start):`,
  );
  for (const [name, s] of [...before, ['GFlowNet (TB from SFT)  ', await heldOut({ ...base, hook: trainer.adapter.policy() })] as const]) {
    console.log(
      `   ${name}accuracy ${(100 * s.majorityAccuracy).toFixed(0)}% (single sample ${(100 * s.sampleAccuracy).toFixed(0)}%), distinct rationales ${s.distinctZ.toFixed(2)}`,
    );
  }
  console.log('   (docs/results.md: the whole protocol over 3 seeds, with LoRA, PPO and 5-operand questions)');
  console.log(
    `\n   Next: npx flowtune sample --run ${gfnDir} --x "${questions[0]}" -n 8, npx flowtune compare --config configs/compare-arithmetic-ood-lora.yaml,`,
  );
  console.log(
    '         npx flowtune verify posterior --config configs/posterior-check.yaml (exact TV to the posterior), npx flowtune --help',
  );
}

async function hypergridDemo(iterations: number): Promise<void> {
  console.log(`2. (${DEMO_MODEL} not found) Training samplers for R on the same grid (${iterations} iterations × 16 trajectories each):`);
  for (const algo of ['tb', 'mdqn'] as Algo[]) {
    const progress = new Progress(iterations, `   ${algo}`);
    const s = await runHypergridBench(
      { ...HYPERGRID_DEFAULTS, ndim: 4, height: 8, reward: 'standard', algo, iterations, evalEvery: iterations },
      { onIteration: (it, loss) => progress.update(it, `loss ${loss.toFixed(4)}`) },
    );
    progress.stop();
    const name = algo === 'tb' ? 'Trajectory balance (GFlowNet)' : 'Munchausen-DQN (soft RL)     ';
    console.log(
      `   ${name}  exact TV to R/Z ${s.tvExact.toFixed(3)}  log Z ${s.logZ?.toFixed(3)} (true ${s.logZTrue.toFixed(3)})  ${s.itPerSec.toFixed(0)} it/s`,
    );
  }
}
