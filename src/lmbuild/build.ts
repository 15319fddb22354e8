/**
 * `flowtune model build-tiny`: corpus assembly + training + writing the model folder and its
 * README (command, seed, corpus mix, training curve, held-out perplexity).
 */
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { ARITH_WEAK_DEFAULTS, generateArithWeak, generateArithmetic, loadLines } from './corpus.js';
import { loadArithmetic } from '../text/arithmetic.js';
import { writeLlamaFolder, writeModelFolder } from './model-folder.js';
import type { GptConfig } from '../lm/gpt.js';
import type { LlamaConfig } from '../lm/llama.js';
import { CharTokenizer } from '../lm/tokenizer.js';
import { ByteBpe } from './bpe.js';
import { llamaTrainable } from './llama-train.js';
import { type TrainOptions, type TrainResult, checkCorpusSize, gptTrainable, heldOutSplit, trainLm } from './train-tiny.js';
import { selectBackend } from '../core/backend.js';

export interface CorpusPart {
  spec: string;
  source: string;
  items: number;
  chars: number;
}

/**
 * Corpus specs: `arithmetic:N` (N generated worked problems, seeded by the build seed),
 * `arith-weak:N[,rationale=R][,direct=D][,chain=C][,chainOps=K][,chainCarry=P]` (N items of the weak-prior corpus, corpus.ts
 * generateArithWeak, same seed), `FILE` (.txt lines or .jsonl `text` fields) or `FILE@N` (N lines drawn without replacement).
 */
export function assembleCorpus(specs: string[], seed: number, exclude: string[], nCtx: number): { items: string[]; parts: CorpusPart[] } {
  const rng = new Rng(seed ^ 0x5eed);
  const excluded = new Set<string>();
  for (const f of exclude) for (const r of loadArithmetic(f)) excluded.add(r.str_query);
  const items: string[] = [];
  const parts: CorpusPart[] = [];
  for (const spec of specs) {
    let got: string[];
    let source: string;
    const gen = /^arithmetic:(\d+)$/.exec(spec);
    const weak = /^arith-weak:(\d+)((?:,(?:rationale|direct|chain|chainOps|chainCarry)=[0-9.]+)*)$/.exec(spec);
    if (!weak && spec.startsWith('arith-weak:'))
      throw new UsageError(`bad corpus spec ${spec}: expected arith-weak:N[,rationale=R][,direct=D][,chain=C][,chainOps=K][,chainCarry=P]`);
    if (weak) {
      const kv = Object.fromEntries(
        weak[2]
          .split(',')
          .filter(Boolean)
          .map((p) => p.split('=')),
      );
      const num = (key: string, fallback: number): number => (kv[key] !== undefined ? Number(kv[key]) : fallback);
      const rationaleRate = num('rationale', ARITH_WEAK_DEFAULTS.rationaleRate);
      const directRate = num('direct', ARITH_WEAK_DEFAULTS.directRate);
      const chainRate = num('chain', ARITH_WEAK_DEFAULTS.chainRate);
      const chainMaxOperands = num('chainOps', ARITH_WEAK_DEFAULTS.maxOperands);
      const chainCarry = num('chainCarry', ARITH_WEAK_DEFAULTS.chainCarry);
      got = generateArithWeak({
        n: Number(weak[1]),
        seed: seed + 1,
        rationaleRate,
        directRate,
        chainRate,
        chainMaxOperands,
        chainCarry,
        exclude: excluded,
      });
      const pct = (x: number) => `${+(100 * x).toFixed(2)}%`;
      source =
        `generated (seed ${seed + 1}; binary facts ${pct(1 - rationaleRate - directRate - chainRate)} — bare, in a sentence, answering "What is/are …?", in lists of 2–8; ` +
        `direct answers ${pct(directRate)} and worked rationales ${pct(rationaleRate)}, 2–${ARITH_WEAK_DEFAULTS.maxOperands} operands` +
        (chainRate > 0
          ? `; worked chains outside the task's frame ${pct(chainRate)}, 3–${chainMaxOperands} operands` +
            (chainCarry < 1
              ? `, each step after the first carrying the running value with probability ${chainCarry} (else restarting from the expression's operand)`
              : '')
          : '') +
        `; ${excluded.size} test queries excluded)`;
    } else if (gen) {
      got = generateArithmetic({ n: Number(gen[1]), seed: seed + 1, exclude: excluded });
      source = `generated (seed ${seed + 1}; 2–5 operands; 12% direct answers, 3% one wrong step; ${excluded.size} test queries excluded)`;
    } else {
      const m = /^(.*?)(?:@(\d+))?$/.exec(spec)!;
      if (!existsSync(m[1])) throw new UsageError(`corpus file not found: ${m[1]}`);
      // Lines longer than the context would be cut mid-sentence; keep whole sentences only.
      got = loadLines(m[1]).filter((l) => l.length >= 8 && l.length < nCtx);
      if (m[2]) {
        const n = Math.min(Number(m[2]), got.length);
        for (let i = 0; i < n; i++) {
          const j = i + rng.int(got.length - i);
          [got[i], got[j]] = [got[j], got[i]];
        }
        got = got.slice(0, n);
      }
      source = m[1];
    }
    if (got.length === 0) throw new UsageError(`corpus ${spec} has no usable items`);
    parts.push({ spec, source, items: got.length, chars: got.reduce((a, s) => a + s.length, 0) });
    items.push(...got);
  }
  return { items, parts };
}

/** The character GPT, or a LLaMA-family model over a byte-level BPE learned from the training items. */
export type ModelSpec =
  | { family: 'gpt'; config: GptConfig }
  | {
      family: 'llama';
      /** BPE merges to learn (vocabulary = 256 bytes + merges + <|endoftext|>) */
      merges: number;
      /** corpus lines of this many characters or more are dropped (the GPT uses its context) */
      maxChars: number;
      config: Omit<LlamaConfig, 'vocabSize' | 'bosTokenId' | 'eosTokenId' | 'padTokenId'>;
    };

export interface BuildOptions {
  out: string;
  corpus: string[];
  exclude: string[];
  seed: number;
  model: ModelSpec;
  train: Omit<TrainOptions, 'seed' | 'log'>;
  command: string;
  log: (line: string) => void;
}

export interface BuildResult extends TrainResult {
  /** the tokenizer the folder's tokenizer.json was written from */
  tokenizer: CharTokenizer | ByteBpe;
  onnxSha256: string;
}

export async function buildTiny(o: BuildOptions): Promise<BuildResult> {
  const m = o.model;
  const maxChars = m.family === 'gpt' ? m.config.nCtx : m.maxChars;
  const { items, parts } = assembleCorpus(o.corpus, o.seed, o.exclude, maxChars);
  o.log(`corpus: ${items.length} items (${parts.map((p) => `${p.spec}: ${p.items}`).join(', ')})`);
  // before the BPE and the model's variables exist (tfjs must not pick a backend on its own)
  checkCorpusSize(items.length, o.train);
  await selectBackend();
  let res: TrainResult;
  let hash: string;
  let tokenizer: CharTokenizer | ByteBpe;
  let family: Record<string, unknown>;
  if (m.family === 'gpt') {
    const tok = (tokenizer = new CharTokenizer());
    res = await trainLm(gptTrainable(m.config, o.seed), tok, items, { ...o.train, seed: o.seed, log: o.log });
    hash = writeModelFolder(o.out, m.config, res.weights, {
      tokenizer: tok,
      extraConfig: { flowtune: { builtBy: 'flowtune model build-tiny', seed: o.seed, tokenizer: 'char' } },
    });
    family = { config: m.config };
  } else {
    // The BPE sees the training items only (the held-out split is the one trainLm makes).
    const { order } = heldOutSplit(items.length, o.seed);
    const t0 = Date.now();
    const tok = (tokenizer = ByteBpe.train(
      order.slice(o.train.valItems).map((i) => items[i]),
      { merges: m.merges, specials: ['<|endoftext|>'] },
    ));
    const eos = tok.eosTokenId;
    const config: LlamaConfig = { ...m.config, vocabSize: tok.vocabSize, bosTokenId: eos, eosTokenId: eos, padTokenId: eos };
    const lens = items.map((t) => tok.encode(t).length);
    const chars = items.reduce((a, t) => a + t.length, 0);
    const tokens = lens.reduce((a, b) => a + b, 0);
    const cut = lens.filter((n) => n + 1 > config.nCtx + 1).length;
    o.log(
      `bpe: ${tok.merges.length} merges in ${((Date.now() - t0) / 1000).toFixed(1)}s, vocabulary ${tok.vocabSize}; ` +
        `${(chars / tokens).toFixed(2)} characters/token, longest item ${Math.max(...lens)} tokens, ${cut} items cut at context ${config.nCtx}`,
    );
    res = await trainLm(llamaTrainable(config, o.seed), tok, items, { ...o.train, seed: o.seed, log: o.log });
    hash = writeLlamaFolder(o.out, config, res.weights, { tokenizer: tok });
    family = { config, tokenizer: { kind: 'byte-level BPE', merges: tok.merges.length, charsPerToken: chars / tokens } };
  }
  const { valSet, weights: _w, ...summary } = res;
  const bitsPerChar = res.valNats / res.valChars / Math.LN2;
  writeFileSync(
    path.join(o.out, 'training.json'),
    JSON.stringify(
      {
        command: o.command,
        seed: o.seed,
        family: m.family,
        ...family,
        train: o.train,
        corpus: parts,
        onnxSha256: hash,
        bitsPerChar,
        ...summary,
      },
      null,
      1,
    ) + '\n',
  );
  writeFileSync(path.join(o.out, 'README.md'), readme(o, parts, res, hash, family));
  return { ...res, tokenizer, onnxSha256: hash };
}

function readme(o: BuildOptions, parts: CorpusPart[], r: TrainResult, hash: string, family: Record<string, any>): string {
  const totalChars = parts.reduce((a, p) => a + p.chars, 0);
  const m = o.model;
  let intro: string;
  if (m.family === 'gpt') {
    const c = m.config;
    intro =
      `A character-level GPT (${c.nLayer} layers, d=${c.nEmbd}, ${c.nHead} heads, context ${c.nCtx}, vocabulary ${c.vocabSize}: ` +
      `<|endoftext|>, <unk>, newline, printable ASCII), ${r.params.toLocaleString('en-US')} parameters, trained by flowtune in tfjs and ` +
      'exported with its ONNX writer (transformers.js layout: config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx).';
  } else {
    const c = family.config as LlamaConfig;
    intro =
      `A LLaMA-family model (model_type llama: ${c.nLayer} layers, d=${c.nEmbd}, ${c.nHead} query heads / ${c.nKvHead} KV heads of ` +
      `${c.headDim}, SwiGLU ${c.intermediateSize}, RMSNorm, rotary θ=${c.ropeTheta}, untied head, context ${c.nCtx} tokens) over a ` +
      `byte-level BPE learned from the training items (${family.tokenizer.merges} merges, vocabulary ${c.vocabSize} with <|endoftext|>; ` +
      `${family.tokenizer.charsPerToken.toFixed(2)} characters/token on the corpus), ${r.params.toLocaleString('en-US')} parameters, ` +
      'trained by flowtune in tfjs and exported with its LLaMA ONNX writer (Optimum I/O names with position_ids; transformers.js layout: ' +
      'config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx).';
  }
  const unit = m.family === 'gpt' ? 'char' : 'token';
  const lines = [
    `# ${path.basename(o.out)}`,
    '',
    intro,
    '',
    '## Rebuild',
    '',
    '```',
    o.command,
    '```',
    '',
    `Seed ${o.seed}. Deterministic for the same seed, corpus files and package versions. onnx/model.onnx sha256 \`${hash}\`.`,
    '',
    '## Corpus mix',
    '',
    '| spec | source | items | characters | share of characters |',
    '|---|---|---:|---:|---:|',
    ...parts.map((p) => `| \`${p.spec}\` | ${p.source} | ${p.items} | ${p.chars} | ${((100 * p.chars) / totalChars).toFixed(1)}% |`),
    '',
    `One item per row at position 0, right-padded and loss-masked, <|endoftext|> after each item. ${o.train.valItems} items are held out ` +
      `(seeded shuffle) for validation. Batch ${o.train.batch}, ${o.train.steps} steps, Adam lr ${o.train.lr} (β = 0.9, 0.99) with ` +
      `${o.train.warmup} warm-up steps then cosine decay to 10%, gradient clipping ${o.train.clip}.`,
    '',
    '## Training curve',
    '',
    `| step | train loss (nats/${unit}) | held-out loss | CPU s | wall s |`,
    '|---:|---:|---:|---:|---:|',
    ...r.curve.map(
      (p) =>
        `| ${p.step} | ${p.trainLoss.toFixed(4)} | ${p.valLoss.toFixed(4)} | ${p.cpuSeconds.toFixed(0)} | ${p.wallSeconds.toFixed(0)} |`,
    ),
    '',
    '## Results',
    '',
    `- Held-out perplexity: **${r.valPerplexity.toFixed(3)}** per ${m.family === 'gpt' ? 'character' : 'token'} (${r.valTokens} predicted tokens, EOS included).`,
    `- Held-out bits per character: **${(r.valNats / r.valChars / Math.LN2).toFixed(4)}** (${r.valNats.toFixed(0)} nats over the ${r.valChars} characters of the ${o.train.valItems} held-out items, / ln 2; each item's first token is given, its EOS predicted).`,
    `- Training time: ${(r.cpuSeconds / 60).toFixed(1)} CPU-minutes (${(r.wallSeconds / 60).toFixed(1)} wall-minutes), peak RSS ${r.peakRssMiB.toFixed(0)} MiB.`,
    '',
  ];
  return lines.join('\n');
}
