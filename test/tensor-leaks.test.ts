import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { tf, selectBackend } from '../src/core/backend.js';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { pairsConfig } from './helpers/pairs-config.js';
import { FineTuneSetup } from '../src/finetune/setup.js';
import { LmTrainer } from '../src/finetune/trainer.js';
import { PpoBaseline } from '../src/baselines/ppo.js';
import { SftBaseline } from '../src/baselines/sft.js';
import { ReinforceBaseline } from '../src/baselines/reinforce.js';
import { trainMethod } from '../src/baselines/methods.js';
import { loadRunPolicy, releasePolicy } from '../src/tasks/policy.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Long runs (1000 steps × several methods in one compare process) exhausted the wasm heap when a
// training step left tensors behind ("memory access out of bounds" after ≈ 2 GB). Property: once
// a trainer exists, its steps leave the number of live tensors unchanged.

const model = writeTempModel(5, { nCtx: 128 }, {}, 2);
const work = mkdtempSync(join(tmpdir(), 'ft-leaks-'));
after(() => {
  model.cleanup();
  rmSync(work, { recursive: true, force: true });
});

const config = (over: Record<string, unknown>) =>
  pairsConfig(model.dir, { objective: 'tb', optim: {}, train: { steps: 10, batchSize: 8 }, ...over });

/** PPO on a batch of 8: two groups of 4, one per minibatch */
const smallPpo = { groupSize: 4, minibatches: 2, epochs: 2 };

const lora = { adapter: { kind: 'lora', rank: 2, alpha: 4, targets: ['c_attn', 'c_proj'] } };

async function liveTensorsPerStep(step: () => Promise<unknown>, steps = 4): Promise<number[]> {
  await step(); // first step may create lazily built state (log Z, replay buffer, moments)
  const counts: number[] = [];
  for (let i = 0; i < steps; i++) {
    await step();
    counts.push(tf.memory().numTensors);
  }
  return counts;
}

const flat = (counts: number[], what: string) =>
  assert.ok(
    counts.every((c) => c === counts[0]),
    `${what}: live tensors after successive steps ${counts.join(', ')}`,
  );

for (const [name, over] of [
  ['TB, head', { objective: 'tb' }],
  ['SubTB, head', { objective: 'subtb' }],
  ['M-DQN, head', { objective: 'mdqn' }],
  ['TB, LoRA', { objective: 'tb', ...lora }],
  ['M-DQN, LoRA', { objective: 'mdqn', ...lora }],
] as const)
  test(`GFlowNet training steps leave no tensors behind (${name})`, async () => {
    await selectBackend();
    const t = await LmTrainer.create(config(over));
    flat(await liveTensorsPerStep(() => t.trainStep()), name);
  });

for (const [name, make, over] of [
  ['SFT', (t: FineTuneSetup) => SftBaseline.create(t), {}],
  ['REINFORCE', async (t: FineTuneSetup) => new ReinforceBaseline(t, 0.05), {}],
  ['PPO, head', async (t: FineTuneSetup) => new PpoBaseline(t, smallPpo), {}],
  ['PPO, LoRA', async (t: FineTuneSetup) => new PpoBaseline(t, smallPpo), lora],
] as const)
  test(`baseline training steps leave no tensors behind (${name})`, async () => {
    await selectBackend();
    const stepper = await make(await FineTuneSetup.create(config(over)));
    flat(await liveTensorsPerStep(() => stepper.trainStep()), name);
  });

// compare trains every method × seed in one process: a released trainer must give back every
// tensor it made (a LoRA trainer holds a tensor copy of the whole model, M-DQN a target copy)
for (const [name, over, kind] of [
  ['TB, head', { objective: 'tb' }, 'gfn'],
  ['M-DQN, LoRA', { objective: 'mdqn', ...lora }, 'gfn'],
  ['PPO, LoRA', lora, 'ppo'],
  ['SFT, head', {}, 'sft'],
] as const)
  test(`a released trainer leaves no tensors behind (${name})`, async () => {
    await selectBackend();
    const before = tf.memory().numTensors;
    const cfg = config(over);
    if (kind === 'gfn') {
      const t = await LmTrainer.create(cfg);
      await t.trainStep();
      await t.trainStep();
      await t.release();
    } else {
      const t = await FineTuneSetup.create(cfg);
      const stepper = kind === 'ppo' ? new PpoBaseline(t, smallPpo) : await SftBaseline.create(t);
      await stepper.trainStep();
      await t.release();
    }
    assert.equal(tf.memory().numTensors, before);
  });

// what compare does per cell: train a method into its folder, load the trained policy, evaluate, release
for (const [name, over, kind] of [
  ['M-DQN, LoRA', { objective: 'mdqn', ...lora }, 'gfn'],
  ['PPO, head', {}, 'ppo'],
] as const)
  test(`a compare cell (train, load the policy, release) leaves no tensors behind (${name})`, async () => {
    await selectBackend();
    const before = tf.memory().numTensors;
    const dir = mkdtempSync(join(work, 'cell-'));
    const cfg = config({ ...over, train: { steps: 2, batchSize: 8, checkpointEvery: 1 } });
    await trainMethod(kind, cfg, dir, { quiet: true, ppo: smallPpo });
    await releasePolicy(await loadRunPolicy(dir, cfg));
    assert.equal(tf.memory().numTensors, before);
  });
