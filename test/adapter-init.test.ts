import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { readTrainConfig } from '../src/finetune/run.js';
import { FineTuneSetup } from '../src/finetune/setup.js';
import { LmTrainer } from '../src/finetune/trainer.js';
import { trainMethod } from '../src/baselines/methods.js';
import { readCompareConfig } from '../src/baselines/compare.js';
import { UsageError } from '../src/core/errors.js';
import { loadRunPolicy, releasePolicy } from '../src/tasks/policy.js';
import { evalArithmeticFile } from '../src/tasks/arithmetic.js';
import { continueGreedy } from '../src/tasks/decode.js';
import { encodeX } from '../src/lm/tokenizer.js';

// adapter.init: a run starts from another run's trained adapter (e.g. a GFlowNet from SFT)

const model = writeTempModel(5, { nCtx: 128 }, {}, 2);
const work = mkdtempSync(join(tmpdir(), 'ft-init-'));
after(() => {
  model.cleanup();
  rmSync(work, { recursive: true, force: true });
});
const trainCfg = join(work, 'arith.yaml');
writeFileSync(
  trainCfg,
  YAML.stringify({
    objective: 'tb',
    seed: 0,
    model: model.dir,
    task: { kind: 'arithmetic', train: ['data/arithmetic/train_50.json'], limit: 8 },
    z: { minLength: 1, maxLength: 40, tool: 'calculator', stop: '.' },
    head: { whitenRollouts: 8 },
    adapter: { targets: ['c_attn', 'c_fc'] },
    train: { steps: 3, batchSize: 4, logEvery: 1, checkpointEvery: 3 },
  }),
);

/** Every file of an adapter folder, by name. */
const filesOf = (dir: string) => Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
const savedAdapter = (setup: FineTuneSetup, name: string) => {
  const dir = join(work, name);
  setup.adapter.save(dir, { id: setup.cfg.model, sha256: setup.session.modelHash });
  return filesOf(dir);
};

for (const kind of ['head', 'lora'] as const) {
  test(`adapter.init (${kind}): the started adapter is the source run's trained adapter, byte for byte; a fresh one is not`, async () => {
    const sftDir = join(work, `sft-${kind}`);
    const sets = [`adapter.kind=${kind}`];
    mkdirSync(sftDir);
    await trainMethod('sft', readTrainConfig(trainCfg, sets), sftDir, { quiet: true });
    const trained = filesOf(join(sftDir, 'checkpoints', 'step-00000003', 'head'));

    const started = await LmTrainer.create(readTrainConfig(trainCfg, [...sets, `adapter.init=${JSON.stringify(sftDir)}`]));
    assert.deepEqual(savedAdapter(started, `started-${kind}`), trained);
    assert.equal(started.step, 0, 'the step count starts at 0');
    await started.session.release();

    const fresh = await FineTuneSetup.create(readTrainConfig(trainCfg, sets));
    const f = savedAdapter(fresh, `fresh-${kind}`);
    assert.ok(
      Object.keys(f).some((k) => !f[k].equals(trained[k])),
      'the untrained adapter differs from the SFT one (else this test could not fail)',
    );
    await fresh.session.release();

    // the other adapter kind cannot start from it
    const other = kind === 'head' ? 'lora' : 'head';
    await assert.rejects(
      FineTuneSetup.create(readTrainConfig(trainCfg, [`adapter.kind=${other}`, `adapter.init=${JSON.stringify(sftDir)}`])),
      (e: Error) => e instanceof UsageError && e.message.includes(`holds a ${kind} adapter; this run trains adapter.kind ${other}`),
    );
  });
}

test('adapter.init: a missing folder or one without checkpoints is a usage error', async () => {
  await assert.rejects(
    FineTuneSetup.create(readTrainConfig(trainCfg, [`adapter.init=${JSON.stringify(join(work, 'nope'))}`])),
    (e: Error) => e instanceof UsageError && /does not exist/.test(e.message),
  );
  await assert.rejects(
    FineTuneSetup.create(readTrainConfig(trainCfg, [`adapter.init=${JSON.stringify(work)}`])),
    (e: Error) => e instanceof UsageError && /holds no checkpoint/.test(e.message),
  );
});

test('compare: init must name an earlier trained method', () => {
  const cfg = (methods: object[]) => {
    const f = join(work, `cmp-${methods.length}-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(f, YAML.stringify({ task: 'arithmetic', train: trainCfg, methods }));
    return f;
  };
  const ok = readCompareConfig(
    cfg([
      { name: 'sft', kind: 'sft' },
      { name: 'tb-from-sft', kind: 'gfn', objective: 'tb', init: 'sft' },
    ]),
    [],
  );
  assert.equal(ok.methods[1].init, 'sft');
  for (const [methods, msg] of [
    [
      [
        { name: 'tb', kind: 'gfn', init: 'sft' },
        { name: 'sft', kind: 'sft' },
      ],
      /init sft must name a method earlier in the list/,
    ],
    [[{ name: 'tb', kind: 'gfn', init: 'tb' }], /must name a method earlier/],
    [
      [
        { name: 'b', kind: 'base' },
        { name: 'tb', kind: 'gfn', init: 'b' },
      ],
      /is a base method/,
    ],
    [
      [
        { name: 'sft', kind: 'sft' },
        { name: 'b', kind: 'base', init: 'sft' },
      ],
      /init applies to trained methods only/,
    ],
  ] as const)
    assert.throws(() => readCompareConfig(cfg(methods as unknown as object[]), []), msg as RegExp);
});

test('a LoRA run is evaluated as the posterior says: Z from the adapted model, Y read off X Z by the frozen base LM', async () => {
  // a strong step size, so the adapted model continues differently from the base one
  const sets = ['adapter.kind=lora', 'optim.lr=0.3', 'train.steps=3'];
  const cfg = readTrainConfig(trainCfg, sets);
  const dir = join(work, 'lora-eval');
  mkdirSync(dir);
  await trainMethod('sft', cfg, dir, { quiet: true });
  const dec = await loadRunPolicy(dir, cfg);
  assert.ok(dec.baseSession && dec.baseSession !== dec.session);
  const { items } = await evalArithmeticFile(dec, 'data/arithmetic/test_3op.json', {
    samples: 2,
    decode: { kind: 'sample', temperature: 1 },
    seed: 0,
    limit: 4,
  });
  const prefixes = items.flatMap((it) => it.samples.map((x) => [...encodeX(dec.tok, it.query), ...dec.tok.encode(x.z)]));
  const byBase = await continueGreedy(dec.baseSession!, dec.tok, prefixes);
  const byAdapted = await continueGreedy(dec.session, dec.tok, prefixes);
  assert.deepEqual(
    items.flatMap((it) => it.samples.map((x) => x.y)),
    byBase,
  );
  assert.ok(
    byAdapted.some((y, i) => y !== byBase[i]),
    'the adapted model continues differently (else this test could not fail)',
  );
  await releasePolicy(dec);
});
