import { encodeX } from '../lm/tokenizer.js';
import { textTrigger } from '../lm/text-stop.js';
import type { Argv, CommandModule } from 'yargs';
import { join } from 'node:path';
import { UsageError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { LmHead } from '../finetune/head.js';
import { sample } from '../lm/sampler.js';
import { describeChars, unencodableChars } from '../lm/tokenizer.js';
import { loadLatestCheckpoint } from '../finetune/checkpoint.js';
import { openModel, zConstraints } from '../finetune/setup.js';
import { type PolicyAdapter, temperedPolicy } from '../finetune/adapter.js';
import { LoraPolicyAdapter } from '../finetune/lora-adapter.js';
import { sampleZ } from '../finetune/rollout.js';
import { runTemperature } from '../tasks/policy.js';
import { scoreRows } from '../finetune/score.js';
import { sequenceLogProbs } from '../finetune/posterior.js';
import { scheduleAt } from '../finetune/schema.js';
import { intArg, numArg } from './args.js';
import { readRunConfig } from '../finetune/run.js';

export const sampleCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'sample',
  describe: 'sample latent sequences Z from a trained run',
  builder: (y: Argv) =>
    y
      .option('run', { type: 'string', demandOption: true, describe: 'run folder (runs/NAME)' })
      .option('x', { type: 'string', demandOption: true, describe: 'the prompt X' })
      .option('y', { type: 'string', describe: 'the observation Y (scores log p_LM(Z Y | X))' })
      .option('n', { type: 'string', default: '16', describe: 'number of samples' })
      .option('temperature', { type: 'string', default: '1', describe: 'sampling temperature on the policy (0 = greedy)' })
      .option('seed', { type: 'string', default: '0' })
      .option('json', { type: 'boolean', default: false, describe: 'one JSON object per line' }),
  handler: async (a) => {
    const runDir = a.run as string;
    const cfg = readRunConfig(runDir);
    const n = intArg('n', a.n, 1, 10_000);
    const temperature = numArg('temperature', a.temperature, 0, 100);
    const { dir, session, tok } = await openModel(cfg);
    const ck = loadLatestCheckpoint(runDir, (l) => process.stderr.write(`flowtune: warning: ${l}\n`));
    // LoRA runs sample from the model with low-rank branches; rewards stay with the frozen base
    const head: PolicyAdapter =
      cfg.adapter.kind === 'lora'
        ? await LoraPolicyAdapter.load(join(ck.dir, 'head'), dir, session)
        : LmHead.load(join(ck.dir, 'head'), { sha256: session.modelHash, vocabSize: session.vocabSize }).head;
    const c = zConstraints(cfg, tok);
    const xIds = encodeX(tok, a.x as string);
    for (const [name, text] of [
      ['-x', a.x],
      ['-y', a.y],
    ] as const) {
      const bad = typeof text === 'string' ? unencodableChars(tok, text) : [];
      if (bad.length)
        process.stderr.write(
          `flowtune: warning: ${name} has characters the model's tokenizer cannot encode (sampled as if they were unknown): ${describeChars(bad)}\n`,
        );
    }
    if (xIds.length === 0) throw new UsageError('--x is empty');
    const need = xIds.length + c.maxLength + 40;
    if (need > session.facts.nCtx)
      throw new UsageError(`--x is ${xIds.length} tokens: with Z and Y that exceeds the model's context window of ${session.facts.nCtx}`);
    const tau = runTemperature(runDir, cfg);
    const hook = temperedPolicy(head, tau);
    const rng = new Rng(intArg('seed', a.seed, 0));
    const zs = await sampleZ(
      head.samplingSession?.() ?? session,
      tok,
      Array.from({ length: n }, () => xIds),
      { constraints: c, temperature, policy: hook, rng },
    );

    let ys: number[][];
    let continuations: string[] | null = null;
    if (a.y !== undefined) ys = zs.map(() => tok.encode(a.y as string));
    else {
      // the base model's own continuation after X Z (greedy, up to a newline or EOS)
      const newline = textTrigger(tok, '\n', () => true); // whatever token carries the newline
      const r = await sample(
        session,
        zs.map((z) => [...xIds, ...z.tokens]),
        { maxNewTokens: 40, temperature: 0, stopWhen: (_b, gen) => newline(gen), rng, keepHidden: false },
      );
      continuations = zs.map((_, i) => {
        const ids = Array.from(r.tokens.subarray(i * r.steps, i * r.steps + r.lengths[i]));
        return tok.decode(ids, true).replace(/\n[\s\S]*$/, '');
      });
      ys = continuations.map((s) => tok.encode(s.length > 0 ? s : '\n'));
    }
    const reward = {
      prior: cfg.reward.prior,
      likelihoodWeight: cfg.reward.likelihoodWeight,
      temperature: scheduleAt(cfg.reward.temperature, cfg.train.steps),
    };
    const rows = await scoreRows(
      session,
      zs.map(() => xIds),
      zs,
      ys,
      c,
      reward,
      { prefix: false },
    );
    const logPF = sequenceLogProbs(
      rows,
      { d: session.hiddenSize, V: session.vocabSize, stop: c.stopId },
      (h, b, chunk) => head.logits(h, b, chunk),
      tau,
    );
    const out = zs.map((z, i) => ({
      z: tok.decode(z.tokens),
      logPF: logPF[i],
      ...(a.y !== undefined ? { logPZYgivenX: rows[i].logPrior + rows[i].logLik, logR: rows[i].logR } : { y: continuations![i] }),
    }));
    if (a.json) for (const o of out) console.log(JSON.stringify(o));
    else {
      console.log(
        `X: ${JSON.stringify(a.x)}${a.y !== undefined ? `   Y: ${JSON.stringify(a.y)}` : ''}   (${n} samples, run ${runDir}, step ${ck.step})`,
      );
      for (const o of out) {
        const score = 'logPZYgivenX' in o ? `log p(Z Y | X) ${o.logPZYgivenX!.toFixed(2)}` : `Y: ${JSON.stringify(o.y)}`;
        console.log(`  log P_F ${o.logPF.toFixed(2).padStart(7)}  ${score}  Z: ${JSON.stringify(o.z)}`);
      }
    }
  },
};
