/**
 * `flowtune model build-tiny`: corpus assembly + training + writing the model folder and its
 * README (command, seed, corpus mix, training curve, held-out perplexity).
 */
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { generateArithmetic, loadLines } from './corpus.js';
import { loadArithmetic } from '../text/arithmetic.js';
import { writeModelFolder } from './model-folder.js';
import type { GptConfig } from '../lm/gpt.js';
import { CharTokenizer } from '../lm/tokenizer.js';
import { type TrainOptions, type TrainResult, trainTiny } from './train-tiny.js';

export interface CorpusPart {
  spec: string;
  source: string;
  items: number;
  chars: number;
}

/**
 * Corpus specs: `arithmetic:N` (N generated worked problems, seeded by the build seed),
 * `FILE` (.txt lines or .jsonl `text` fields) or `FILE@N` (N lines drawn without replacement).
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
    if (gen) {
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

export interface BuildOptions {
  out: string;
  corpus: string[];
  exclude: string[];
  seed: number;
  config: GptConfig;
  train: Omit<TrainOptions, 'seed' | 'log'>;
  command: string;
  log: (line: string) => void;
}

export async function buildTiny(o: BuildOptions): Promise<TrainResult> {
  const tok = new CharTokenizer();
  const { items, parts } = assembleCorpus(o.corpus, o.seed, o.exclude, o.config.nCtx);
  o.log(`corpus: ${items.length} items (${parts.map((p) => `${p.spec}: ${p.items}`).join(', ')})`);
  const res = await trainTiny(o.config, tok, items, { ...o.train, seed: o.seed, log: o.log });
  const hash = writeModelFolder(o.out, o.config, res.weights, {
    tokenizer: tok,
    extraConfig: { flowtune: { builtBy: 'flowtune model build-tiny', seed: o.seed, tokenizer: 'char' } },
  });
  const { valSet, weights: _w, ...summary } = res;
  writeFileSync(
    path.join(o.out, 'training.json'),
    JSON.stringify(
      { command: o.command, seed: o.seed, config: o.config, train: o.train, corpus: parts, onnxSha256: hash, ...summary },
      null,
      1,
    ) + '\n',
  );
  writeFileSync(path.join(o.out, 'README.md'), readme(o, parts, res, hash));
  return res;
}

function readme(o: BuildOptions, parts: CorpusPart[], r: TrainResult, hash: string): string {
  const totalChars = parts.reduce((a, p) => a + p.chars, 0);
  const c = o.config;
  const lines = [
    `# ${path.basename(o.out)}`,
    '',
    `A character-level GPT (${c.nLayer} layers, d=${c.nEmbd}, ${c.nHead} heads, context ${c.nCtx}, vocabulary ${c.vocabSize}: ` +
      `<|endoftext|>, <unk>, newline, printable ASCII), ${r.params.toLocaleString('en-US')} parameters, trained by flowtune in tfjs and ` +
      'exported with its ONNX writer (transformers.js layout: config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx).',
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
    '| step | train loss (nats/char) | held-out loss | CPU s | wall s |',
    '|---:|---:|---:|---:|---:|',
    ...r.curve.map(
      (p) =>
        `| ${p.step} | ${p.trainLoss.toFixed(4)} | ${p.valLoss.toFixed(4)} | ${p.cpuSeconds.toFixed(0)} | ${p.wallSeconds.toFixed(0)} |`,
    ),
    '',
    '## Results',
    '',
    `- Held-out perplexity: **${r.valPerplexity.toFixed(3)}** per character (${r.valTokens} predicted tokens, EOS included).`,
    `- Training time: ${(r.cpuSeconds / 60).toFixed(1)} CPU-minutes (${(r.wallSeconds / 60).toFixed(1)} wall-minutes), peak RSS ${r.peakRssMiB.toFixed(0)} MiB.`,
    '',
  ];
  return lines.join('\n');
}
