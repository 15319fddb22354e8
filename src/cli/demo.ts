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
import type { Decoder } from '../tasks/decode.js';

const DEMO_CONFIG = 'configs/arithmetic-tiny.yaml';

/**
 * `npm start`: the default job. (1) the exact GFlowNet = soft-RL check on a hypergrid;
 * (2) a short GFlowNet fine-tuning run of the shipped arithmetic LM (TB, calculator tool),
 * then rationales sampled from it for held-out questions. Without the shipped model it
 * trains two hypergrid samplers instead.
 */
export const demoCommand: CommandModule<object, { steps: number; iterations: number }> = {
  command: 'demo',
  describe: 'the default job (npm start): exact check, then a short fine-tuning run and samples',
  builder: (y) =>
    y
      .option('steps', { type: 'number', default: 150, describe: 'fine-tuning steps of the LM run' })
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
    if (existsSync('models/arith-char/onnx/model.onnx')) await languageModelDemo(a.steps);
    else await hypergridDemo(a.iterations);
  },
};

async function languageModelDemo(steps: number): Promise<void> {
  const cfg = readTrainConfig(DEMO_CONFIG, [`train.steps=${steps}`, 'train.checkpointEvery=1000000']);
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const runDir = join('runs', `demo-${stamp}`);
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, 'config.yaml'), YAML.stringify(cfg));
  console.log(`2. Fine-tuning the shipped arithmetic LM (models/arith-char, frozen) with a LoRA-style head, trajectory balance,`);
  console.log(`   ${steps} steps × ${cfg.train.batchSize} rationales (${DEMO_CONFIG}; run folder ${runDir}).`);
  console.log(`   X = a question, Z = a worked rationale (a calculator completes each "a op b ="), Y = ". The answer is N."`);
  console.log(`   The reward R(Z) = p_LM(X Z Y): rationales that make the known answer likely are sampled more often.`);
  const trainer = await LmTrainer.create(cfg);
  const last = await runTraining(trainer, runDir, { label: '   train tb' });
  console.log(
    `   done: loss ${last?.loss.toFixed(3)}, mean log R ${last?.meanLogR.toFixed(2)}, learned log Z(X) ${last?.logZ.toFixed(2)}\n`,
  );

  console.log('3. Rationales sampled from the fine-tuned policy for held-out questions (then the base LM writes the answer):');
  const questions = ['Question: 7 + 2 - 5 = ? Answer:', 'Question: 3 - 8 + 6 = ? Answer:'];
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
  console.log('\n4. A short evaluation on held-out questions (first 20 of data/arithmetic/test_3op.json, 5 samples each, majority vote):');
  const base: Decoder = { session: trainer.session, tok: trainer.tok, constraints: trainer.constraints };
  const tuned: Decoder = { ...base, hook: trainer.adapter.policy() };
  for (const [name, dec] of [
    ['base LM (no head)', base],
    ['fine-tuned (TB)  ', tuned],
  ] as const) {
    const { summary: s } = await evalArithmeticFile(dec, 'data/arithmetic/test_3op.json', {
      samples: 5,
      decode: { kind: 'sample', temperature: 1 },
      seed: 0,
      limit: 20,
    });
    console.log(
      `   ${name}  accuracy ${(100 * s.majorityAccuracy).toFixed(0)}% (single sample ${(100 * s.sampleAccuracy).toFixed(0)}%), distinct rationales ${s.distinctZ.toFixed(2)}`,
    );
  }
  console.log('   (the shipped model is already near-perfect with the calculator; docs/results.md compares every method)');
  console.log(
    `\n   Next: npx flowtune train --config configs/arithmetic-tiny.yaml (300 steps), npx flowtune sample --run ${runDir} --x "${questions[0]}" -n 8,`,
  );
  console.log(
    '         npx flowtune verify posterior --config configs/posterior-check.yaml (exact TV to the posterior), npx flowtune --help',
  );
}

async function hypergridDemo(iterations: number): Promise<void> {
  console.log(
    `2. (models/arith-char not found) Training samplers for R on the same grid (${iterations} iterations × 16 trajectories each):`,
  );
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
