import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../core/errors.js';
import { type ModelSpec, buildTiny } from '../lmbuild/build.js';
import { heldOutScore } from '../lmbuild/heldout.js';
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
  family: string;
  'bpe-merges': number;
  'kv-heads'?: number;
  ffn?: number;
  'max-chars'?: number;
}

const buildTinyCommand: CommandModule<object, BuildArgs> = {
  command: 'build-tiny',
  describe:
    'train a small LM in tfjs (a character-level GPT, or --family llama: a LLaMA-family model over a byte-level BPE) and write it as a transformers.js-layout ONNX model folder',
  builder: (y) =>
    y
      .option('corpus', {
        type: 'string',
        array: true,
        demandOption: true,
        describe:
          'arithmetic:N | arith-weak:N[,rationale=R][,direct=D][,chain=C][,chainOps=K][,chainCarry=P] | FILE(.txt|.jsonl)[@N], repeatable',
      })
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
      .option('ctx', { type: 'number', default: 128, describe: 'context in tokens (characters for the GPT)' })
      .option('val', { type: 'number', default: 500, describe: 'held-out items' })
      .option('eval-every', { type: 'number', default: 100 })
      .option('family', {
        type: 'string',
        choices: ['gpt', 'llama'],
        default: 'gpt',
        describe: 'gpt: character GPT; llama: LLaMA-family over a byte-level BPE',
      })
      .option('bpe-merges', { type: 'number', default: 768, describe: 'llama: BPE merges learned from the training items' })
      .option('kv-heads', { type: 'number', describe: 'llama: key/value heads (grouped-query attention; default heads / 2)' })
      .option('ffn', { type: 'number', describe: 'llama: SwiGLU width (default 8/3·embd rounded up to a multiple of 16)' })
      .option('max-chars', {
        type: 'number',
        describe: 'llama: corpus lines of this many characters or more are dropped (default 160; the GPT uses --ctx)',
      }) as unknown as Argv<BuildArgs>,
  handler: async (a) => {
    for (const k of ['seed', 'steps', 'batch', 'warmup', 'layers', 'embd', 'heads', 'ctx', 'val', 'eval-every'] as const)
      if (!Number.isInteger(a[k]) || a[k] < 0) throw new UsageError(`--${k} must be a non-negative integer`);
    if (!(a.lr > 0)) throw new UsageError('--lr must be positive');
    const llama = a.family === 'llama';
    for (const k of ['bpe-merges', 'kv-heads', 'ffn', 'max-chars'] as const) {
      const v = a[k];
      if (v === undefined) continue;
      if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${k} must be a positive integer`);
      if (!llama && a[k] !== undefined && k !== 'bpe-merges') throw new UsageError(`--${k} needs --family llama`);
    }
    const kvHeads = a['kv-heads'] ?? Math.max(1, Math.floor(a.heads / 2));
    const ffn = a.ffn ?? Math.ceil((8 * a.embd) / 3 / 16) * 16;
    const maxChars = a['max-chars'] ?? 160;
    if (llama) {
      if (a.embd % a.heads !== 0 || (a.embd / a.heads) % 2 !== 0)
        throw new UsageError(`--embd ${a.embd} must split into ${a.heads} heads of even size (rotary)`);
      if (a.heads % kvHeads !== 0) throw new UsageError(`--heads ${a.heads} must be a multiple of --kv-heads ${kvHeads}`);
    }
    const llamaFlags = llama
      ? ` --family llama --bpe-merges ${a['bpe-merges']} --kv-heads ${kvHeads} --ffn ${ffn} --max-chars ${maxChars}`
      : '';
    const command =
      `flowtune model build-tiny ${a.corpus.map((c) => `--corpus ${c}`).join(' ')} ${a.exclude.map((c) => `--exclude ${c}`).join(' ')} --out ${a.out} --seed ${a.seed} --steps ${a.steps} --batch ${a.batch} --lr ${a.lr} --layers ${a.layers} --embd ${a.embd} --heads ${a.heads} --ctx ${a.ctx}${llamaFlags}${a.val !== 500 ? ` --val ${a.val}` : ''}${a['eval-every'] !== 100 ? ` --eval-every ${a['eval-every']}` : ''}${a.warmup !== 50 ? ` --warmup ${a.warmup}` : ''}`.replace(
        / +/g,
        ' ',
      );
    const model: ModelSpec = llama
      ? {
          family: 'llama',
          merges: a['bpe-merges'],
          maxChars,
          config: {
            modelType: 'llama',
            nLayer: a.layers,
            nHead: a.heads,
            nKvHead: kvHeads,
            nEmbd: a.embd,
            headDim: a.embd / a.heads,
            intermediateSize: ffn,
            nCtx: a.ctx,
            rmsEps: 1e-5,
            ropeTheta: 10000,
            attentionBias: false,
            tieWordEmbeddings: false,
          },
        }
      : {
          family: 'gpt',
          config: {
            vocabSize: new CharTokenizer().vocabSize,
            nLayer: a.layers,
            nHead: a.heads,
            nEmbd: a.embd,
            nCtx: a.ctx,
            lnEps: 1e-5,
            bosTokenId: 0,
            eosTokenId: 0,
            padTokenId: 0,
          },
        };
    await buildTiny({
      out: a.out,
      corpus: a.corpus,
      exclude: a.exclude,
      seed: a.seed,
      model,
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
    y.positional('dir', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }).option('dtype', {
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

interface HeldOutArgs {
  dir: string;
  corpus: string[];
  seed: number;
  val: number;
  'max-chars': number;
  json: boolean;
}

const heldOutCommand: CommandModule<object, HeldOutArgs> = {
  command: 'heldout <dir>',
  describe:
    "bits per character on a build's seeded held-out items (same corpus, seed, --val and --max-chars as its build-tiny), through the ONNX graph and the folder's tokenizer: comparable across tokenizers",
  builder: (y) =>
    y
      .positional('dir', { type: 'string', demandOption: true })
      .option('corpus', { type: 'string', array: true, demandOption: true, describe: 'the corpus specs the model was built from' })
      .option('seed', { type: 'number', demandOption: true, describe: 'the build seed (fixes the held-out split)' })
      .option('val', { type: 'number', default: 500, describe: 'held-out items' })
      .option('max-chars', { type: 'number', default: 160, describe: "the build's line-length cut (the char GPT's --ctx)" })
      .option('json', { type: 'boolean', default: false }) as unknown as Argv<HeldOutArgs>,
  handler: async (a) => {
    for (const k of ['seed', 'val', 'max-chars'] as const)
      if (!Number.isInteger(a[k]) || a[k] < 1) throw new UsageError(`--${k} must be a positive integer`);
    const r = await heldOutScore(await resolveModelDir(a.dir), {
      corpus: a.corpus,
      seed: a.seed,
      valItems: a.val,
      maxChars: a['max-chars'],
    });
    if (a.json) console.log(JSON.stringify(r));
    else
      console.log(
        `${a.dir}: ${r.items} held-out items, ${r.chars} characters, ${r.tokens} predicted tokens (EOS included)\n` +
          `  ${r.nats.toFixed(1)} nats  →  ${r.bitsPerChar.toFixed(4)} bits/char  (${r.bitsPerPredictedChar.toFixed(4)} bits per predicted char, ` +
          `first token given: ${r.predictedChars} chars)  perplexity ${r.perplexityPerToken.toFixed(3)}/token`,
      );
  },
};

interface EvalArgs {
  dir: string;
  data: string[];
  limit?: number;
  show: number;
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
      .option('show', { type: 'number', default: 1, describe: 'greedy outputs to print per file (free and forced)' })
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
      const forced = await evalArithmetic(s, tok, f, { calculator: true, forceRationale: true, limit: a.limit });
      const gap = await rationaleRewardGap(s, tok, f, Math.min(200, free.n), 1);
      const pc = (x: number) => `${(100 * x).toFixed(1)}%`;
      const line =
        `| ${path.basename(f)} | ${free.n} | ${pc(free.accuracy)} | ${pc(calc.accuracy)} | ${pc(calc.withRationale)} | ${pc(calc.firstStep)} | ` +
        `${pc(forced.accuracy)} | ${pc(forced.firstStep)} | ${gap.meanLogPriorCorrect.toFixed(2)} | ${gap.meanGap.toFixed(2)} nats (${(100 * gap.fracPrefersCorrect).toFixed(0)}% of ${gap.n}) |`;
      rows.push(line);
      console.log(
        `${path.basename(f)}: n=${free.n} free ${pc(free.accuracy)}  calculator ${pc(calc.accuracy)} (rationale written ${pc(calc.withRationale)}, first step right ${pc(calc.firstStep)})  ` +
          `forced rationale + calculator ${pc(forced.accuracy)} (first step right ${pc(forced.firstStep)})  log p(Z*|X) ${gap.meanLogPriorCorrect.toFixed(2)}  reward gap ${gap.meanGap.toFixed(2)} nats, correct preferred in ${(100 * gap.fracPrefersCorrect).toFixed(0)}%`,
      );
      for (const r of [free, forced])
        for (const e of r.examples.slice(0, a.show)) console.log(`  ${r.forceRationale ? 'forced' : 'free  '}: ${e.query}${e.output}`);
    }
    await s.release();
    if (a.readme) {
      const file = path.join(a.dir, 'README.md');
      const cmd = `flowtune model eval-arithmetic ${a.dir} ${a.data.map((d) => `--data ${d}`).join(' ')}${a.limit ? ` --limit ${a.limit}` : ''} --readme`;
      const section = [
        '<!-- eval-arithmetic -->',
        '## Base-model arithmetic accuracy (greedy, no fine-tuning)',
        '',
        `Zero-shot: the prompt is the query X alone. The context (${s.facts.nCtx} characters) leaves little room for demonstrations,`,
        'and the X Z Y format is part of the pre-training corpus, so the base model needs none. "free": the model writes',
        'every intermediate result; "calculator": each "a op b =" it writes is completed by the tool (docs/design.md §6).',
        '"rationale": share of calculator outputs that write a rationale at all (an "=" before "The answer is");',
        '"first step": share whose rationale starts with the query\'s first two operands and operator ("5 + 9 =" for',
        '"5 + 9 - 3"). "forced": the prompt is X + " ", so the answer cannot follow "Answer:" at once (what z.minLength 1',
        'does in fine-tuning); calculator on.',
        '',
        'log p(Z*|X): mean prior log-probability (nats) of the correct rationale Z* (results included) given X, first 200',
        'problems. Reward gap: mean of log p(Y | X Z_correct) − log p(Y | X Z_one-wrong-step) with Y the true answer (same',
        'problems, wrong step seeded), and how often the correct rationale scores higher.',
        '',
        '| test file | problems | free | calculator | rationale | first step | forced: accuracy | forced: first step | log p(Z*\\|X) | reward gap |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
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
  builder: (y) =>
    y
      .command(buildTinyCommand)
      .command(inspectCommand)
      .command(generateCommand)
      .command(evalArithCommand)
      .command(heldOutCommand)
      .demandCommand(1),
  handler: () => {},
};
