import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { LmTrainer } from '../src/finetune/trainer.js';
import { initialLogZ } from '../src/finetune/objectives/tb.js';
import { exactPosterior } from '../src/finetune/posterior.js';
import { validate } from '../src/finetune/config-loader.js';
import { trainConfigSchema } from '../src/finetune/schema.js';
import { goldZ, infillSplits } from '../src/finetune/examples.js';
import { CharTokenizer } from '../src/lm/tokenizer.js';

const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));
const model = writeTempModel(3, {}, {}, 2);
after(() => model.cleanup());
const work = mkdtempSync(join(tmpdir(), 'ft-train-'));

/** Posterior check at CI size: 341 sequences (4 tokens, |Z| ≤ 4), a random-weight tiny GPT. */
const checkConfig = (objective: string, steps: number) => ({
  objective,
  seed: 0,
  model: model.dir,
  task: { kind: 'pairs', pairs: [{ x: 'The cat', y: ' sat.' }] },
  z: { maxLength: 4, allowed: ['a', 'b', 'c', 'd'] },
  reward: { prior: 'allowed', likelihoodWeight: 4 },
  exploration: { epsilon: objective === 'mdqn' ? { start: 0.1, end: 0.1, horizon: 0 } : { start: 0.1, end: 0, horizon: steps / 2 } },
  train: { steps, batchSize: 16, logEvery: 5, checkpointEvery: 20 },
});

for (const objective of ['tb', 'subtb', 'mdqn', 'mdqn+priorPerToken']) {
  test(`${objective} fits the exact posterior p(Z | X, Y) (TV < 0.05)`, async () => {
    const [name, perToken] = objective.split('+');
    const base = checkConfig(name, 300);
    const cfg = validate(perToken ? { ...base, dqn: { priorPerToken: true } } : base, trainConfigSchema, 'test');
    const t = await LmTrainer.create(cfg);
    const before = await exactPosterior(t);
    assert.ok(before.klPosteriorPrior > 1, `posterior must be far from the prior: KL ${before.klPosteriorPrior}`);
    assert.ok(before.tv > 0.3, `the untrained policy is far from the posterior (TV ${before.tv})`);
    let logZ = NaN;
    for (let i = 0; i < 300; i++) logZ = (await t.trainStep()).logZ;
    const r = await exactPosterior(t);
    assert.equal(r.sequences, 1 + 4 + 16 + 64 + 256);
    assert.ok(Math.abs(r.policyMass - 1) < 1e-4, 'the enumeration holds all of the policy mass');
    assert.ok(r.tv < 0.05, `${objective}: exact TV of the policy P_θ(Z) from the posterior p(Z | X, Y) ${r.tv}`);
    assert.ok(Math.abs(logZ - r.logZTrue) < 0.1, `${objective}: log Z ${logZ} vs exact ${r.logZTrue}`);
  });
}

test('TB reusing each sampled batch for 4 updates (train.updatesPerBatch) nears the exact posterior from 24 batches; one update per batch does not', async () => {
  const fit = async (updatesPerBatch: number) => {
    const base = checkConfig('tb', 24);
    const t = await LmTrainer.create(validate({ ...base, train: { ...base.train, updatesPerBatch } }, trainConfigSchema, 'test'));
    let logZ = NaN;
    for (let i = 0; i < 24; i++) logZ = (await t.trainStep()).logZ;
    const r = await exactPosterior(t);
    await t.release();
    return { tv: r.tv, dLogZ: Math.abs(logZ - r.logZTrue) };
  };
  const four = await fit(4);
  assert.ok(four.tv < 0.08 && four.dLogZ < 0.1, `four updates per batch: TV ${four.tv}, |Δ log Z| ${four.dLogZ}`);
  const one = await fit(1);
  assert.ok(one.tv > 0.3, `one update per batch: TV ${one.tv}`);
});

test('gold rationales: calculator results are environment steps, not actions', () => {
  const tok = new CharTokenizer();
  const z = goldZ(' 6 - 0 =, 6 - 4 =', tok, true);
  assert.equal(tok.decode(z.tokens), ' 6 - 0 = 6, 6 - 4 = 2');
  const tool = Array.from(z.isAction)
    .map((a, i) => (a ? '' : tok.decode([z.tokens[i]])))
    .join('');
  assert.equal(tool, ' 6 2');
});

test('infill splits rebuild the sentence and are seeded', () => {
  const s = ['one two three four five six seven eight', 'too short here'];
  const a = infillSplits(s, 1);
  assert.equal(a.length, 1);
  assert.equal(a[0].x + a[0].z + a[0].y, s[0]);
  assert.deepEqual(infillSplits(s, 1), a);
});

function writeConfig(name: string, over: Record<string, unknown> = {}): string {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, YAML.stringify({ ...checkConfig('subtb', 120), ...over }));
  return file;
}

const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('a killed run resumes and ends with the same numbers as an uninterrupted one', async () => {
  const cfg = writeConfig('resume');
  const full = join(work, 'full');
  const r1 = run('train', '--config', cfg, '--out', full, '--json');
  assert.equal(r1.status, 0, r1.stderr);
  const killed = join(work, 'killed');
  const child = spawn(process.execPath, [cli, 'train', '--config', cfg, '--out', killed], { stdio: 'ignore' });
  // kill -9 once a checkpoint past step 20 exists, mid-run
  const metrics = join(killed, 'metrics.jsonl');
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      const lines = existsSync(metrics) ? readFileSync(metrics, 'utf8').trim().split('\n').filter(Boolean) : [];
      if (lines.length > 0 && JSON.parse(lines[lines.length - 1]).step >= 25) {
        clearInterval(poll);
        child.kill('SIGKILL');
      }
    }, 5);
    child.on('exit', (code, signal) => {
      clearInterval(poll);
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`training ended before it could be killed (code ${code})`));
    });
  });
  assert.ok(!existsSync(join(killed, 'summary.json')), 'the run was cut short');
  const r2 = run('train', '--resume', '--out', killed, '--json');
  assert.equal(r2.status, 0, r2.stderr);
  const a = JSON.parse(r1.stdout.trim().split('\n').pop()!);
  const b = JSON.parse(r2.stdout.trim().split('\n').pop()!);
  assert.equal(b.steps, 120);
  // a resume that loses the RNG state, the optimizer state or the replay draws other rollouts
  assert.equal(b.loss, a.loss, 'final loss after resume vs uninterrupted run (RNG, optimizer, replay restored)');
  assert.equal(b.meanLogR, a.meanLogR, 'mean log R after resume vs uninterrupted run');
  assert.equal(b.logZ, a.logZ, 'log Z after resume vs uninterrupted run');
  const strip = (f: string) =>
    readFileSync(f, 'utf8')
      .trim()
      .split('\n')
      .map((l) => {
        const { seconds: _s, samplesPerSec: _p, ...rest } = JSON.parse(l);
        return rest;
      });
  assert.deepEqual(
    strip(join(killed, 'metrics.jsonl')),
    strip(join(full, 'metrics.jsonl')),
    'metrics.jsonl of the resumed run vs the uninterrupted one',
  );
  // and sampling from the finished run works
  const s = run('sample', '--run', killed, '--x', 'The cat', '--y', ' sat.', '-n', '4', '--json');
  assert.equal(s.status, 0, s.stderr);
  const rows = s.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(rows.length, 4);
  for (const r of rows) {
    assert.match(r.z, /^[abcd]{0,4}$/);
    assert.ok(r.logPF <= 0 && Number.isFinite(r.logPZYgivenX));
  }
});

function assertUsageError(r: ReturnType<typeof run>, pattern: RegExp): void {
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], pattern);
}

test('bad inputs: one line, exit 2, an existing run untouched', () => {
  assertUsageError(run('train', '--config', writeConfig('unknown', { bogus: 1 })), /unknown key bogus/);
  assertUsageError(run('train', '--config', writeConfig('nested', { optim: { lr: 'fast' } })), /optim\.lr/);
  assertUsageError(run('train', '--config', writeConfig('nomodel', { model: join(work, 'no-such-model') })), /no such model folder/);
  const longX = 'x'.repeat(200);
  assertUsageError(
    run(
      'train',
      '--config',
      writeConfig('longx', { task: { kind: 'pairs', pairs: [{ x: longX, y: 'y' }] } }),
      '--out',
      join(work, 'longx-run'),
    ),
    /context window/,
  );
  assertUsageError(run('train', '--config', writeConfig('setbad'), '--set', 'train.steps=many'), /train\.steps/);
  assertUsageError(
    run('train', '--config', writeConfig('reuse-mdqn'), '--set', 'objective=mdqn', '--set', 'train.updatesPerBatch=4'),
    /train\.updatesPerBatch applies to tb and subtb/,
  );
  const file = join(work, 'plain-file');
  writeFileSync(file, 'x');
  assertUsageError(
    run('train', '--config', writeConfig('unwritable'), '--out', join(file, 'run')),
    /cannot create folder .*is a file, not a folder \(ENOTDIR\)/,
  );
  // an existing run folder is never overwritten
  const existing = join(work, 'full');
  const before = readFileSync(join(existing, 'metrics.jsonl'), 'utf8');
  assertUsageError(run('train', '--config', writeConfig('again'), '--out', existing), /already holds a run/);
  assert.equal(readFileSync(join(existing, 'metrics.jsonl'), 'utf8'), before);
  assertUsageError(run('sample', '--run', join(work, 'nope'), '--x', 'a'), /not a run folder/);
  if (process.getuid?.() !== 0) {
    const ro = join(work, 'readonly');
    mkdirSync(ro);
    chmodSync(ro, 0o500);
    assertUsageError(
      run('train', '--config', writeConfig('ro'), '--out', join(ro, 'run')),
      /cannot create folder .*permission denied \(EACCES\)/,
    );
  }
});

test('--set overrides any key and the resolved config is written into the run', () => {
  const out = join(work, 'override');
  const r = run(
    'train',
    '--config',
    writeConfig('override'),
    '--set',
    'objective=tb',
    '--set',
    'seed=3',
    '--set',
    'train.steps=5',
    '--out',
    out,
  );
  assert.equal(r.status, 0, r.stderr);
  const resolved = YAML.parse(readFileSync(join(out, 'config.yaml'), 'utf8'));
  assert.equal(resolved.objective, 'tb');
  assert.equal(resolved.seed, 3);
  assert.equal(resolved.train.steps, 5);
  assert.equal(resolved.optim.lr, 0.003, 'defaults are filled in');
});

test('a diverging run stops naming the step, after saving the last good state', () => {
  const out = join(work, 'diverged');
  const cfg = writeConfig('diverge', {
    objective: 'tb',
    optim: { lr: 1e30, clip: 1e30 },
    train: { steps: 50, batchSize: 8, logEvery: 1, checkpointEvery: 1000 },
  });
  const r = run('train', '--config', cfg, '--out', out);
  assert.equal(r.status, 3, r.stderr);
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('flowtune:'));
  assert.equal(lines.length, 1, r.stderr);
  const m = /became (NaN|-?Infinity) at step (\d+); the last good state \(step (\d+)\) is saved/.exec(lines[0]);
  assert.ok(m, lines[0]);
  assert.equal(Number(m[3]), Number(m[2]) - 1);
  const latest = readFileSync(join(out, 'checkpoints', 'latest'), 'utf8').trim();
  assert.equal(latest, `step-${String(Number(m[3])).padStart(8, '0')}`);
  assert.doesNotMatch(r.stderr, /^\s+at .+:\d+/m, 'no stack trace');
});

test('TB log Z start: per question log mean exp of the on-policy importance weights, then the mean over questions (hand-worked)', () => {
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
  // one question, weights 1 and 3: log((1 + 3) / 2) = log 2 (the plain mean of log w would be log 3 / 2)
  close(initialLogZ([0, Math.log(3)], ['x', 'x'], [true, true]), Math.log(2));
  // two questions with one row each: the mean of their log w
  close(initialLogZ([-4, -10], ['a', 'b'], [true, true]), -7);
  // a replayed gold rationale of tiny policy probability (log w = +50) is left out
  close(initialLogZ([-4, 50, -6], ['a', 'a', 'b'], [true, false, true]), -5);
  // no on-policy row: every row counts
  close(initialLogZ([-4, -6], ['a', 'b'], [false, false]), -5);
  // two questions, one with two rows: (log mean(e^-1, e^-3) + (-8)) / 2
  close(initialLogZ([-1, -3, -8], ['a', 'a', 'b'], [true, true, true]), (Math.log((Math.exp(-1) + Math.exp(-3)) / 2) - 8) / 2);
});
