import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../core/errors.js';
import { buildTiny } from '../lmbuild/build.js';
import { inspectModel, formatInspect } from '../lm/inspect.js';
import type { Dtype } from '../lm/folder.js';
import { CharTokenizer, encodeX, loadHfTokenizer } from '../lm/tokenizer.js';
import { LmSession } from '../lm/session.js';
import { evalArithmetic, rationaleRewardGap } from '../lmbuild/eval-arithmetic.js';
import { resolveModelDir } from '../lm/resolve.js';
import { sample } from '../lm/sampler.js';
import { Rng } from '../core/rng.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

interface BuildArgs {
  corpus: string[];
  out: string;
  seed: number;
  exclude: string[];
  steps: number;
  batch: number;
  lr: number;
  warmup: number;
  layers: number;
  embd: number;
  heads: number;
  ctx: number;
  val: number;
  'eval-every': number;
}

const buildTinyCommand: CommandModule<object, BuildArgs> = {
  command: 'build-tiny',
  describe: 'train a small character-level GPT in tfjs and write it as a transformers.js-layout ONNX model folder',
  builder: (y) =>
    y
      .option('corpus', { type: 'string', array: true, demandOption: true, describe: 'arithmetic:N | FILE(.txt|.jsonl)[@N], repeatable' })
      .option('out', { type: 'string', demandOption: true, describe: 'output model folder' })
      .option('seed', { type: 'number', default: 1 })
      .option('exclude', {
        type: 'string',
        array: true,
        default: [],
        describe: 'arithmetic JSON files whose queries are never generated (test sets)',
      })
      .option('steps', { type: 'number', default: 2000 })
      .option('batch', { type: 'number', default: 32 })
      .option('lr', { type: 'number', default: 3e-3 })
      .option('warmup', { type: 'number', default: 50 })
      .option('layers', { type: 'number', default: 2 })
      .option('embd', { type: 'number', default: 64 })
      .option('heads', { type: 'number', default: 4 })
      .option('ctx', { type: 'number', default: 128 })
      .option('val', { type: 'number', default: 500, describe: 'held-out items' })
      .option('eval-every', { type: 'number', default: 100 }) as unknown as Argv<BuildArgs>,
  handler: async (a) => {
    for (const k of ['seed', 'steps', 'batch', 'warmup', 'layers', 'embd', 'heads', 'ctx', 'val', 'eval-every'] as const)
      if (!Number.isInteger(a[k]) || a[k] < 0) throw new UsageError(`--${k} must be a non-negative integer`);
    if (!(a.lr > 0)) throw new UsageError('--lr must be positive');
    const vocabSize = new CharTokenizer().vocabSize;
    const command =
      `flowtune model build-tiny ${a.corpus.map((c) => `--corpus ${c}`).join(' ')} ${a.exclude.map((c) => `--exclude ${c}`).join(' ')} --out ${a.out} --seed ${a.seed} --steps ${a.steps} --batch ${a.batch} --lr ${a.lr} --layers ${a.layers} --embd ${a.embd} --heads ${a.heads} --ctx ${a.ctx}`.replace(
        / +/g,
        ' ',
      );
    await buildTiny({
      out: a.out,
      corpus: a.corpus,
      exclude: a.exclude,
      seed: a.seed,
      config: {
        vocabSize,
        nLayer: a.layers,
        nHead: a.heads,
        nEmbd: a.embd,
        nCtx: a.ctx,
        lnEps: 1e-5,
        bosTokenId: 0,
        eosTokenId: 0,
        padTokenId: 0,
      },
      train: { steps: a.steps, batch: a.batch, lr: a.lr, warmup: a.warmup, clip: 1.0, evalEvery: a['eval-every'], valItems: a.val },
      command,
      log: (l) => console.log(l),
    });
  },
};

const inspectCommand: CommandModule<object, { dir: string; json: boolean; dtype: string }> = {
  command: 'inspect <dir>',
  describe:
    'print family, attention/KV heads, vocabulary vs tokenizer, context, position handling, parameters, inputs/outputs, files read (DIR: folder or cached hub id)',
  builder: (y) =>
    y
      .positional('dir', { type: 'string', demandOption: true })
      .option('json', { type: 'boolean', default: false })
      .option('dtype', {
        type: 'string',
        default: 'fp32',
        describe: 'weights file as transformers.js dtype: fp32 (model.onnx), fp16, q8 (model_quantized.onnx), ...',
      }) as unknown as Argv<{
      dir: string;
      json: boolean;
      dtype: string;
    }>,
  handler: async (a) => {
    const info = await inspectModel(await resolveModelDir(a.dir), a.dtype as Dtype);
    console.log(a.json ? JSON.stringify(info) : formatInspect(info));
  },
};

interface EvalArgs {
  dir: string;
  data: string[];
  limit?: number;
  readme: boolean;
}

const evalArithCommand: CommandModule<object, EvalArgs> = {
  command: 'eval-arithmetic <dir>',
  describe: 'greedy accuracy of a base model on arithmetic test files, free and with the calculator tool',
  builder: (y) =>
    y
      .positional('dir', { type: 'string', demandOption: true })
      .option('data', { type: 'string', array: true, demandOption: true, describe: 'arithmetic JSON files (test_3op.json ...)' })
      .option('limit', { type: 'number', describe: 'first N problems per file' })
      .option('readme', {
        type: 'boolean',
        default: false,
        describe: "write the results into DIR/README.md's evaluation section",
      }) as unknown as Argv<EvalArgs>,
  handler: async (a) => {
    const s = await LmSession.open(a.dir, { needHidden: false });
    const tok = await loadHfTokenizer(a.dir, s.facts.eosTokenId, s.vocabSize);
    const rows: string[] = [];
    for (const f of a.data) {
      if (!existsSync(f)) throw new UsageError(`no such file: ${f}`);
      const free = await evalArithmetic(s, tok, f, { calculator: false, limit: a.limit });
      const calc = await evalArithmetic(s, tok, f, { calculator: true, limit: a.limit });
      const gap = await rationaleRewardGap(s, tok, f, Math.min(200, free.n), 1);
      const line = `| ${path.basename(f)} | ${free.n} | ${(100 * free.accuracy).toFixed(1)}% | ${(100 * calc.accuracy).toFixed(1)}% | ${gap.meanGap.toFixed(2)} nats (${(100 * gap.fracPrefersCorrect).toFixed(0)}% of ${gap.n}) |`;
      rows.push(line);
      console.log(
        `${path.basename(f)}: n=${free.n} free ${(100 * free.accuracy).toFixed(1)}%  calculator ${(100 * calc.accuracy).toFixed(1)}%  reward gap ${gap.meanGap.toFixed(2)} nats, correct preferred in ${(100 * gap.fracPrefersCorrect).toFixed(0)}%`,
      );
      console.log(`  e.g. ${free.examples[0].query}${free.examples[0].output}`);
    }
    await s.release();
    if (a.readme) {
      const file = path.join(a.dir, 'README.md');
      const cmd = `flowtune model eval-arithmetic ${a.dir} ${a.data.map((d) => `--data ${d}`).join(' ')}${a.limit ? ` --limit ${a.limit}` : ''} --readme`;
      const section = [
        '<!-- eval-arithmetic -->',
        '## Base-model arithmetic accuracy (greedy, no fine-tuning)',
        '',
        'Zero-shot: the prompt is the query X alone. The context (128 characters) leaves no room for demonstrations,',
        'and the X Z Y format is part of the pre-training corpus, so the base model needs none. "free": the model writes',
        'every intermediate result; "calculator": each "a op b =" it writes is completed by the tool (docs/design.md §6).',
        '',
        'Reward gap: mean of log p(Y | X Z_correct) − log p(Y | X Z_one-wrong-step) with Y the true answer (first 200',
        'problems, wrong step seeded), and how often the correct rationale scores higher.',
        '',
        '| test file | problems | free | calculator | reward gap |',
        '|---|---:|---:|---:|---:|',
        ...rows,
        '',
        '```',
        cmd,
        '```',
        '<!-- /eval-arithmetic -->',
        '',
      ].join('\n');
      const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
      const re = /<!-- eval-arithmetic -->[\s\S]*<!-- \/eval-arithmetic -->\n?/;
      writeFileSync(file, re.test(old) ? old.replace(re, section) : old + '\n' + section);
    }
  },
};

interface GenArgs {
  dir: string;
  prompt: string[];
  n: number;
  'max-new-tokens': number;
  temperature: number;
  seed: number;
}

const generateCommand: CommandModule<object, GenArgs> = {
  command: 'generate <dir>',
  describe: "continue prompts with flowtune's sampler (temperature 0 = greedy); prints one line per sample with its log-prob",
  builder: (y) =>
    y
      .positional('dir', { type: 'string', demandOption: true })
      .option('prompt', { type: 'string', array: true, demandOption: true })
      .option('n', { type: 'number', default: 1, describe: 'samples per prompt' })
      .option('max-new-tokens', { type: 'number', default: 64 })
      .option('temperature', { type: 'number', default: 1 })
      .option('seed', { type: 'number', default: 1 }) as unknown as Argv<GenArgs>,
  handler: async (a) => {
    if (!Number.isInteger(a.n) || a.n < 1) throw new UsageError('--n must be a positive integer');
    const dir = await resolveModelDir(a.dir);
    const s = await LmSession.open(dir, { needHidden: false });
    const tok = await loadHfTokenizer(dir, s.facts.eosTokenId, s.vocabSize);
    const prompts = a.prompt.flatMap((p) => Array.from({ length: a.n }, () => p));
    const ids = prompts.map((p) => encodeX(tok, p));
    const r = await sample(s, ids, {
      maxNewTokens: a['max-new-tokens'],
      temperature: a.temperature,
      rng: new Rng(a.seed),
      keepHidden: false,
    });
    prompts.forEach((p, b) => {
      const row = Array.from(r.tokens.subarray(b * r.steps, b * r.steps + r.lengths[b]));
      let lp = 0;
      for (let t = 0; t < r.lengths[b]; t++) lp += r.logProbs[b * r.steps + t];
      console.log(`${JSON.stringify(p + tok.decode(row, true))}  logp=${lp.toFixed(2)}${r.stopped[b] ? '' : ' (truncated)'}`);
    });
    await s.release();
  },
};

export const modelCommand: CommandModule = {
  command: 'model <command>',
  describe: 'language-model folders: build-tiny, inspect, generate, eval-arithmetic',
  builder: (y) => y.command(buildTinyCommand).command(inspectCommand).command(generateCommand).command(evalArithCommand).demandCommand(1),
  handler: () => {},
};
