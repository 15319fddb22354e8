/**
 * LoRA vs the LoRA-style head: sampling tokens/s at batch 16 (prompt 32, 32 new
 * tokens, EOS never chosen), training-step time (TB on the exact-posterior setup of
 * configs/posterior-check.yaml: sample 16 Z, score with the frozen LM, one optimizer step)
 * and peak RSS, each variant in its own process so peak RSS is its own. Wall and CPU time
 * (best of reps by CPU time; wall time on shared 2-core machines moves ±50% with load).
 * `--rounds R` runs head and LoRA R times, alternating, and reports the median ratio and its range.
 *   node dist/bench/lora.js [--models models/arith-char,models/english-char,tiny:2x64,tiny:4x128] [--steps 12] [--rounds 1] [--json]
 * `tiny:LxD` is a random-weight GPT with L layers and width D (cost growth with depth/width).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { selectBackend } from '../src/core/backend.js';
import { Rng } from '../src/core/rng.js';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { LmSession } from '../src/lm/session.js';
import { sample } from '../src/lm/sampler.js';
import { LmHead, headConfig } from '../src/finetune/head.js';
import { LoraAdapter, openLoraSession } from '../src/finetune/lora.js';
import { readTrainConfig } from '../src/finetune/run.js';
import { LmTrainer } from '../src/finetune/trainer.js';
import { readConfig } from '../src/lm/folder.js';

const args = process.argv.slice(2);
const arg = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1] : d);

async function timed<T>(f: () => Promise<T>, reps: number): Promise<{ wall: number; cpu: number }> {
  let best = { wall: Infinity, cpu: Infinity };
  for (let i = 0; i < reps; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await f();
    const wall = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    const cpu = (c.user + c.system) / 1e6;
    if (cpu < best.cpu) best = { wall, cpu };
  }
  return best;
}

/** One variant in this process: --child MODEL head|lora. */
async function child(spec: string, kind: 'head' | 'lora'): Promise<Record<string, number | string>> {
  await selectBackend();
  let dir = spec;
  let cleanup = () => {};
  const m = /^tiny:(\d+)x(\d+)$/.exec(spec);
  if (m) {
    const t = writeTempModel(1, { nLayer: Number(m[1]), nEmbd: Number(m[2]), nHead: 4, nCtx: 128 }, {}, 1);
    dir = t.dir;
    cleanup = t.cleanup;
  }
  const facts = readConfig(dir);
  const out: Record<string, number | string> = { model: spec, adapter: kind };
  // sampling
  const B = 16,
    T = 32;
  const rng = new Rng(1);
  const prompts = Array.from({ length: B }, () => Array.from({ length: 32 }, () => 3 + rng.int(facts.vocabSize - 3)));
  let s: LmSession;
  let policy: ReturnType<LmHead['policy']> | undefined;
  if (kind === 'lora') {
    const ad = new LoraAdapter(facts, { rank: 8, alpha: 16, targets: ['c_attn', 'c_proj', 'c_fc'] }, 1);
    s = await openLoraSession(dir, ad);
  } else {
    s = await LmSession.open(dir);
    const head = new LmHead(
      headConfig({ kind: 'mlp', rank: 8, alpha: 16, width: 256, hiddenSize: facts.nEmbd, vocabSize: facts.vocabSize }),
      1,
    );
    policy = head.policy();
  }
  const reps = Number(arg('--reps', '4'));
  const t = await timed(
    () => sample(s, prompts, { maxNewTokens: T, minNewTokens: T, rng: new Rng(2), policy, keepHidden: kind === 'head' }),
    reps,
  );
  out.sample_tok_s = Math.round((B * T) / t.wall);
  out.sample_tok_cpu_s = Math.round((B * T) / t.cpu);
  await s.release();
  // training steps: TB on the posterior-check setup with this model (the first step includes log Z init)
  const steps = Number(arg('--steps', '12'));
  const sets = [`adapter.kind=${kind}`, `model=${dir}`, 'adapter.targets=[c_attn,c_proj,c_fc]', `train.steps=${steps + 1}`];
  const trainer = await LmTrainer.create(readTrainConfig('configs/posterior-check.yaml', sets));
  await trainer.trainStep();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await trainer.trainStep();
  const c = process.cpuUsage(c0);
  out.train_step_ms = Math.round((performance.now() - t0) / steps);
  out.train_step_cpu_ms = Math.round((c.user + c.system) / 1000 / steps);
  out.peak_rss_mib = Math.round(process.resourceUsage().maxRSS / 1024);
  cleanup();
  return out;
}

async function main() {
  if (args[0] === '--child') {
    console.log(JSON.stringify(await child(args[1], args[2] as 'head' | 'lora')));
    return;
  }
  const models = arg('--models', 'models/arith-char,models/english-char,tiny:2x64,tiny:4x128').split(',');
  const self = fileURLToPath(import.meta.url);
  const rows: Record<string, number | string>[] = [];
  const rounds = Number(arg('--rounds', '1'));
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)];
  for (const model of models) {
    // head and LoRA alternate round by round, so that load changes on a shared machine hit both
    const runs: Record<string, Record<string, number | string>>[] = [];
    for (let k = 0; k < rounds; k++) {
      const r: Record<string, Record<string, number | string>> = {};
      for (const kind of ['head', 'lora']) {
        const p = spawnSync(process.execPath, [self, '--child', model, kind, ...args], { encoding: 'utf8' });
        if (p.status !== 0) throw new Error(`bench child ${model} ${kind} failed: ${p.stderr.split('\n').slice(-3).join(' ')}`);
        r[kind] = JSON.parse(p.stdout.trim().split('\n').pop()!);
      }
      runs.push(r);
    }
    const ratio = (r: (typeof runs)[number], num: string, den: string) => Number(r.lora[num]) / Number(r.head[den]);
    const sampleRatios = runs.map((r) => ratio(r, 'sample_tok_cpu_s', 'sample_tok_cpu_s'));
    const stepRatios = runs.map((r) => ratio(r, 'train_step_cpu_ms', 'train_step_cpu_ms'));
    const med = (kind: 'head' | 'lora', key: string) => median(runs.map((r) => Number(r[kind][key])));
    const row: Record<string, number | string> = {
      model,
      head_sample_tok_s: med('head', 'sample_tok_s'),
      lora_sample_tok_s: med('lora', 'sample_tok_s'),
      sample_ratio_cpu: +median(sampleRatios).toFixed(2),
      head_step_ms: med('head', 'train_step_ms'),
      lora_step_ms: med('lora', 'train_step_ms'),
      head_step_cpu_ms: med('head', 'train_step_cpu_ms'),
      lora_step_cpu_ms: med('lora', 'train_step_cpu_ms'),
      step_ratio_cpu: +median(stepRatios).toFixed(2),
      head_rss_mib: Math.max(...runs.map((r) => Number(r.head.peak_rss_mib))),
      lora_rss_mib: Math.max(...runs.map((r) => Number(r.lora.peak_rss_mib))),
    };
    if (rounds > 1) {
      const range = (v: number[]) => `${Math.min(...v).toFixed(2)}–${Math.max(...v).toFixed(2)}`;
      row.sample_ratio_range = range(sampleRatios);
      row.step_ratio_range = range(stepRatios);
    }
    rows.push(row);
    if (!args.includes('--json')) console.log(JSON.stringify(row));
  }
  if (args.includes('--json')) console.log(JSON.stringify(rows));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
