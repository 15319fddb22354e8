/**
 * LoRA adapters inside the transformer: for every adapted linear layer
 * (src/lm/lora-spec.ts) the output gains (alpha/rank)·(x·A)·B with A [in, r], B [r, out].
 * A starts Kaiming-uniform as PEFT's (bound 1/sqrt(in), i.e. kaiming_uniform_ with a = √5)
 * and B = 0, so the untrained policy is exactly the base model. A and B are the only trainable
 * tensors; the frozen weights are read from the model's own ONNX initializers (no second
 * weight file). The same factors drive three consumers that must agree:
 *   - the differentiable tfjs forward (lmbuild/reference.ts, lmbuild/llama-tf.ts for the LLaMA
 *     family, with LoraParams) for training;
 *   - the ONNX session with low-rank branches (lm/lora-graph.ts) for KV-cached sampling;
 *   - export: merged initializers W + s·A·B, or a PEFT adapter (export.ts).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tf } from '../core/backend.js';
import { Rng } from '../core/rng.js';
import { UsageError } from '../core/errors.js';
import { configFromFacts, modelFamily, readConfig, readGptWeights, readOnnx, sha256 } from '../lm/folder.js';
import { type GptConfig, paramShapes } from '../lm/gpt.js';
import { type LoraFacts, type LoraModule, loraModules } from '../lm/lora-spec.js';
import { type LlamaConfig, llamaConfigFromHf, llamaParamShapes } from '../lm/llama.js';
import { llamaLayoutForward, toLlamaTfParams } from '../lmbuild/llama-tf.js';
import { type LoraFactors, addLoraBranches, loraFeeds } from '../lm/lora-graph.js';
import { LmSession } from '../lm/session.js';
import { type NamedArray, loadSafetensors, saveSafetensors } from '../lm/safetensors.js';
import { type LoraParams, type TfParams, fusedAttnParams, gptForward } from '../lmbuild/reference.js';
import { type TokenLayout, paddedLayout, sharedPrefixLayout } from '../lmbuild/token-layout.js';

export interface LoraConfig {
  rank: number;
  alpha: number;
  /** HF module names; null = the family's PEFT default */
  targets: string[] | null;
}

export interface LoraManifest {
  format: 'flowtune-lora';
  version: 1;
  baseModel: string;
  baseModelSha256: string;
  modelType: string;
  rank: number;
  alpha: number;
  targets: string[];
}

export class LoraAdapter {
  readonly modules: LoraModule[];
  readonly scale: number;
  readonly targets: string[];
  /** module stem → trainable factors */
  readonly vars = new Map<string, { a: tf.Variable; b: tf.Variable }>();

  constructor(
    readonly facts: LoraFacts,
    readonly config: LoraConfig,
    seed: number,
  ) {
    this.modules = loraModules(facts, config.targets, config.rank);
    this.targets = [...new Set(this.modules.map((m) => m.target))];
    this.scale = config.alpha / config.rank;
    const rng = new Rng(seed);
    const r = config.rank;
    for (const m of this.modules) {
      const bound = 1 / Math.sqrt(m.inDim);
      const a = new Float32Array(m.inDim * r);
      for (let i = 0; i < a.length; i++) a[i] = (2 * rng.uniform() - 1) * bound;
      // tidy: a variable keeps its own reference to the initial values, whose tensor would stay alive
      this.vars.set(
        m.name,
        tf.tidy(() => ({ a: tf.variable(tf.tensor2d(a, [m.inDim, r]), true), b: tf.variable(tf.zeros([r, m.outDim]), true) })),
      );
    }
  }

  trainableVariables(): tf.Variable[] {
    return [...this.vars.values()].flatMap((v) => [v.a, v.b]);
  }

  /** The factors as the tfjs forward takes them (live variables: gradients flow). */
  tfParams(): LoraParams {
    const out: LoraParams = new Map();
    for (const [n, v] of this.vars) out.set(n, { a: v.a as tf.Tensor2D, b: v.b as tf.Tensor2D, scale: this.scale });
    return out;
  }

  /** A snapshot of the current factors (row-major copies). */
  factors(): Map<string, LoraFactors> {
    const out = new Map<string, LoraFactors>();
    for (const [n, v] of this.vars) out.set(n, { a: Float32Array.from(v.a.dataSync()), b: Float32Array.from(v.b.dataSync()) });
    return out;
  }

  /** Sets every factor (tests, load). */
  setFactors(f: Map<string, LoraFactors>): void {
    for (const [n, v] of this.vars) {
      const x = f.get(n);
      if (!x) throw new UsageError(`LoRA: no factors for module ${n}`);
      tf.tidy(() => {
        v.a.assign(tf.tensor2d(x.a, v.a.shape as [number, number]));
        v.b.assign(tf.tensor2d(x.b, v.b.shape as [number, number]));
      });
    }
  }

  /** Feeds for a session opened with `openLoraSession` — call after each update. */
  feedsInto(session: LmSession): void {
    session.setExtraFeeds(loraFeeds(this.modules, this.config.rank, this.factors()));
  }

  /** Writes adapter.safetensors + adapter.json into dir. */
  save(dir: string, base: { id: string; sha256: string }): LoraManifest {
    mkdirSync(dir, { recursive: true });
    const t = new Map<string, NamedArray>();
    for (const [n, f] of this.factors()) {
      const m = this.modules.find((x) => x.name === n)!;
      t.set(`${n}.A`, { shape: [m.inDim, this.config.rank], data: f.a });
      t.set(`${n}.B`, { shape: [this.config.rank, m.outDim], data: f.b });
    }
    const manifest: LoraManifest = {
      format: 'flowtune-lora',
      version: 1,
      baseModel: base.id,
      baseModelSha256: base.sha256,
      modelType: this.facts.modelType,
      rank: this.config.rank,
      alpha: this.config.alpha,
      targets: this.targets,
    };
    saveSafetensors(path.join(dir, 'adapter.safetensors'), t, { format: 'flowtune-lora' });
    const tmp = path.join(dir, `adapter.json.tmp-${process.pid}`);
    writeFileSync(tmp, JSON.stringify(manifest, null, 2) + '\n');
    renameSync(tmp, path.join(dir, 'adapter.json'));
    return manifest;
  }

  static load(dir: string, facts: LoraFacts, expect?: { sha256?: string }): { adapter: LoraAdapter; manifest: LoraManifest } {
    const mf = path.join(dir, 'adapter.json');
    if (!existsSync(mf)) throw new UsageError(`${dir}: missing adapter.json`);
    let m: LoraManifest;
    try {
      m = JSON.parse(readFileSync(mf, 'utf8'));
    } catch {
      throw new UsageError(`${mf}: not valid JSON`);
    }
    if (m.format !== 'flowtune-lora') throw new UsageError(`${mf}: not a flowtune LoRA manifest`);
    if (expect?.sha256 && expect.sha256 !== m.baseModelSha256)
      throw new UsageError(
        `${dir}: adapter was trained on base model ${m.baseModel} (sha256 ${m.baseModelSha256.slice(0, 12)}…), not this one`,
      );
    const adapter = new LoraAdapter(facts, { rank: m.rank, alpha: m.alpha, targets: m.targets }, 0);
    const { tensors } = loadSafetensors(path.join(dir, 'adapter.safetensors'));
    const f = new Map<string, LoraFactors>();
    for (const mod of adapter.modules) {
      const take = (k: string, shape: number[]) => {
        const t = tensors.get(k);
        if (!t) throw new UsageError(`${dir}/adapter.safetensors: missing tensor ${k}`);
        if (t.shape.join('x') !== shape.join('x'))
          throw new UsageError(`${dir}/adapter.safetensors: ${k} has shape ${t.shape}, expected ${shape}`);
        return t.data;
      };
      f.set(mod.name, { a: take(`${mod.name}.A`, [mod.inDim, m.rank]), b: take(`${mod.name}.B`, [m.rank, mod.outDim]) });
    }
    adapter.setFactors(f);
    return { adapter, manifest: m };
  }

  dispose(): void {
    for (const v of this.trainableVariables()) v.dispose();
  }
}

/** The frozen base model for the tfjs forward, read from the folder's ONNX initializers. */
export type FrozenModel = ({ family: 'gpt2'; config: GptConfig } | { family: 'llama'; config: LlamaConfig }) & {
  params: TfParams;
  sha256: string;
};

export function loadFrozenModel(dir: string): FrozenModel {
  const facts = readConfig(dir);
  const family = modelFamily(facts);
  const { bytes, model } = readOnnx(dir);
  if (family === 'llama') {
    const config = llamaConfigFromHf(facts.raw);
    const w = readGptWeights(
      model,
      llamaParamShapes(config).map(([n]) => n),
    );
    return { family, config, params: toLlamaTfParams(config, w), sha256: sha256(bytes) };
  }
  const config = configFromFacts(facts);
  const w = readGptWeights(
    model,
    paramShapes(config).map(([n]) => n),
  );
  return { family, config, params: fusedAttnParams(w), sha256: sha256(bytes) };
}

/** logits [B·S, V] and hidden [B·S, d] of the adapted model (call inside tf.tidy / a gradient closure). */
export function loraForward(
  base: FrozenModel,
  adapter: LoraAdapter | null,
  batch: number,
  seqLen: number,
  ids: ArrayLike<number>,
  mask?: ArrayLike<number>,
) {
  return loraLayoutForward(base, adapter, paddedLayout({ batch, seqLen, ids, mask }));
}

/** The adapted model over a token layout (lmbuild/token-layout.ts): logits and hidden at its reads. */
export function loraLayoutForward(base: FrozenModel, adapter: LoraAdapter | null, layout: TokenLayout) {
  if (base.family === 'llama') return llamaLayoutForward(base.config, base.params, layout, adapter?.tfParams());
  return gptForward(base.config, base.params, layout, adapter?.tfParams());
}

/** An ORT session over the model folder with low-rank branches, fed with the adapter's current factors. */
export async function openLoraSession(dir: string, adapter: LoraAdapter, opts: { threads?: number } = {}): Promise<LmSession> {
  const s = await LmSession.open(dir, {
    threads: opts.threads,
    transform: (m) => addLoraBranches(m, adapter.modules, adapter.scale, adapter.config.rank),
  });
  adapter.feedsInto(s);
  return s;
}

/**
 * The adapted model's logits at every decision node of teacher-forced rows X Z, stacked in
 * the order of stackNodes (objective.ts): node j of a row is the state X z_1..j, read at
 * position |X| + j − 1 of the row (j may be ≤ 0: a state inside X). `nodes[b]` are the
 * prefix lengths of row b (ScoredRow.nodes).
 * Rows that share their X (a training batch draws 16 Z for the same question) run X once:
 * a shared-prefix layout (lmbuild/token-layout.ts), one row per distinct X holding X and then
 * the distinct Z tails of its rows, packed without padding — the same logits to float round-off
 * at a fraction of the forward. Otherwise one forward over the left-padded rows. Either way only
 * the read positions go through the output layer.
 */
export function loraNodeLogits(base: FrozenModel, adapter: LoraAdapter, xs: number[][], zs: number[][], nodes: number[][]): tf.Tensor2D {
  const B = xs.length;
  const groupOf = new Map<string, number>();
  const group = xs.map((x) => {
    const k = x.join(',');
    if (!groupOf.has(k)) groupOf.set(k, groupOf.size);
    return groupOf.get(k)!;
  });
  // tokens after the last read never reach a read
  const tails = zs.map((z, b) => ({ group: group[b], tokens: z.slice(0, Math.max(0, ...nodes[b])) }));
  const rows = xs.map((x, b) => [...x, ...zs[b]]);
  const S = Math.max(...rows.map((r) => r.length));
  if (groupOf.size < B && xs.every((x) => x.length > 0)) {
    // each X's distinct tails, a tail that starts another (same X) read from the longer one:
    // fewer tokens, and identical rows get bitwise identical logits
    const nest = nestSequences(tails.map((t) => [-1 - t.group, ...t.tokens])); // the group as a first "token" no id can equal
    const kept = nest.kept.map((b) => tails[b]);
    const keptOf = nest.of;
    // packed: one row per X; worth it when its forward FLOPs are fewer, per layer ≈ 24·d²
    // per token (linear layers) + 4·d per query-key pair (attention) — a row per X holds all
    // of that X's tails, so with many long tails its attention square can outgrow the padding saved
    const d = base.config.nEmbd;
    const packed = new Map<number, number>();
    xs.forEach((x, b) => packed.set(group[b], x.length));
    for (const t of kept) packed.set(t.group, packed.get(t.group)! + t.tokens.length);
    const Sp = Math.max(...packed.values());
    const cost = (rowsN: number, s: number) => rowsN * s * (6 * d + s);
    if (cost(groupOf.size, Sp) < cost(B, S)) {
      const prefixes: number[][] = [];
      xs.forEach((x, b) => (prefixes[group[b]] = x));
      const layout = sharedPrefixLayout({
        prefixes,
        tails: kept,
        reads: nodes.flatMap((n, b) => n.map((j) => ({ row: keptOf[b], len: xs[b].length + j }))),
        padId: base.config.padTokenId,
      });
      return loraLayoutForward(base, adapter, layout).logits;
    }
  }
  const ids = new Int32Array(B * S).fill(base.config.padTokenId);
  const mask = new Uint8Array(B * S);
  const reads: number[] = [];
  rows.forEach((r, b) => {
    const pad = S - r.length;
    for (let i = 0; i < r.length; i++) {
      ids[b * S + pad + i] = r[i];
      mask[b * S + pad + i] = 1;
    }
    for (const j of nodes[b]) reads.push(b * S + pad + xs[b].length + j - 1);
  });
  const layout = paddedLayout({ batch: B, seqLen: S, ids, mask });
  layout.reads = Int32Array.from(reads);
  return loraLayoutForward(base, adapter, layout).logits;
}

/**
 * Sequences that are no prefix of another: `kept` are their indices (longest first, ties by
 * index), and `of[i]` is the position in `kept` of the first kept sequence that starts with
 * sequence i — running only the kept ones gives every sequence's causal states.
 */
export function nestSequences(seqs: number[][]): { kept: number[]; of: number[] } {
  const key = (p: number[], n: number) => p.slice(0, n).join(',');
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[b].length - seqs[a].length || a - b);
  const kept: number[] = [];
  const keptOf = new Map<string, number>(); // every prefix of a kept sequence → that sequence
  const of = new Array<number>(seqs.length);
  for (const i of order) {
    const p = seqs[i];
    let k = keptOf.get(key(p, p.length));
    if (k === undefined) {
      k = kept.push(i) - 1;
      for (let n = 1; n <= p.length; n++) if (!keptOf.has(key(p, n))) keptOf.set(key(p, n), k);
    }
    of[i] = k;
  }
  return { kept, of };
}
