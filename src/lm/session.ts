/**
 * onnxruntime-node session over a model folder: one batched forward that returns logits,
 * the final hidden state and the updated KV cache. intraOpNumThreads defaults to 1: on 2
 * shared cores two ORT threads collapse under load (docs/design.md §3).
 */
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { UsageError } from '../core/errors.js';
import { type ModelFacts, ONNX_FILE, graphIo, readConfig, readOnnx, sha256 } from './folder.js';
import { exposeHiddenState } from './surgery.js';
import { type ModelProto, encodeModel } from './onnx-graph.js';

export interface SessionOptions {
  /** ORT intra-op threads (default 1). */
  threads?: number;
  /** Graph-surgery the final hidden state out of a logits-only export (default true). */
  needHidden?: boolean;
  /** Rewrites the decoded graph before the session is created (e.g. LoRA branches, lora-graph.ts). */
  transform?: (model: ModelProto) => void;
}

/** Past keys/values for a batch: names past_key_values.{i}.key|value → [B, H, length, Dh]. */
export interface KvCache {
  batch: number;
  length: number;
  tensors: Record<string, ort.Tensor>;
}

export interface ForwardInput {
  batch: number;
  /** [B × S] token ids, row-major. */
  inputIds: ArrayLike<number>;
  /** [B × (past + S)] 1 = attend, 0 = padding / masked out (a BigInt64Array is passed to ORT as is). */
  attentionMask: ArrayLike<number> | BigInt64Array;
  past?: KvCache;
}

export interface ForwardOutput {
  seqLen: number;
  /** [B × S × V] */
  logits: Float32Array;
  /** [B × S × d], or null when the model has no hidden-state output. */
  hidden: Float32Array | null;
  present: KvCache;
}

export class LmSession {
  readonly facts: ModelFacts;
  readonly inputNames: string[];
  readonly outputNames: string[];
  readonly hasHidden: boolean;
  readonly hasKvCache: boolean;
  readonly hasPositionIds: boolean;
  /** sha256 of onnx/model.onnx as stored (before any in-memory surgery). */
  readonly modelHash: string;
  readonly dir: string;
  private readonly pastNames: string[];
  /** Inputs a graph transform added (e.g. LoRA factors), merged into every forward's feeds. */
  private extraFeeds: Record<string, ort.Tensor> = {};

  private constructor(
    private readonly session: ort.InferenceSession,
    dir: string,
    facts: ModelFacts,
    hash: string,
    public readonly hiddenName: string | null,
  ) {
    this.dir = dir;
    this.facts = facts;
    this.modelHash = hash;
    this.inputNames = [...session.inputNames];
    this.outputNames = [...session.outputNames];
    this.pastNames = this.inputNames.filter((n) => n.startsWith('past_key_values.'));
    this.hasKvCache = this.pastNames.length > 0;
    this.hasHidden = hiddenName !== null;
    this.hasPositionIds = this.inputNames.includes('position_ids');
  }

  static async open(dir: string, opts: SessionOptions = {}): Promise<LmSession> {
    const facts = readConfig(dir);
    const { bytes, model } = readOnnx(dir);
    const hash = sha256(bytes);
    let data: Uint8Array = bytes;
    let hiddenName: string | null = graphIo(model).outputs.some((o) => o.name === 'last_hidden_state') ? 'last_hidden_state' : null;
    if (!hiddenName && opts.needHidden !== false) {
      try {
        exposeHiddenState(model);
        data = encodeModel(model);
        hiddenName = 'last_hidden_state';
      } catch (err) {
        // No recognizable LM-head MatMul: the model still samples and scores, without hidden states.
        if (!(err instanceof UsageError)) throw err;
      }
    }
    if (opts.transform) {
      opts.transform(model);
      data = encodeModel(model);
    }
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new UsageError(`threads must be a positive integer, got ${threads}`);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(data, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
    } catch (err) {
      throw new UsageError(`${path.join(dir, ONNX_FILE)}: onnxruntime cannot load it (${(err as Error).message.split('\n')[0]})`);
    }
    return new LmSession(session, dir, facts, hash, hiddenName);
  }

  get vocabSize(): number {
    return this.facts.vocabSize;
  }

  get hiddenSize(): number {
    return this.facts.nEmbd;
  }

  get nLayer(): number {
    return this.pastNames.length / 2;
  }

  /** Sets the extra graph inputs fed with every forward (replaces the previous set). */
  setExtraFeeds(feeds: Record<string, ort.Tensor>): void {
    this.extraFeeds = feeds;
  }

  emptyCache(batch: number): KvCache {
    const f = this.facts;
    const tensors: Record<string, ort.Tensor> = {};
    for (const n of this.pastNames) tensors[n] = new ort.Tensor('float32', new Float32Array(0), [batch, f.nHead, 0, f.headDim]);
    return { batch, length: 0, tensors };
  }

  async forward(inp: ForwardInput): Promise<ForwardOutput> {
    const B = inp.batch;
    const S = inp.inputIds.length / B;
    const past = inp.past ?? this.emptyCache(B);
    const T = past.length + S;
    if (!Number.isInteger(S) || S < 1) throw new Error(`forward: ${inp.inputIds.length} ids do not split into ${B} rows`);
    if (inp.attentionMask.length !== B * T) throw new Error(`forward: attention mask has ${inp.attentionMask.length} entries, expected ${B}×${T}`);
    if (T > this.facts.nCtx) throw new UsageError(`sequence of ${T} tokens exceeds the model's context of ${this.facts.nCtx}`);
    if (past.batch !== B) throw new Error(`forward: cache batch ${past.batch} ≠ ${B}`);
    const ids = new BigInt64Array(B * S);
    for (let i = 0; i < ids.length; i++) ids[i] = BigInt(inp.inputIds[i]);
    let mask: BigInt64Array;
    if (inp.attentionMask instanceof BigInt64Array) mask = inp.attentionMask;
    else {
      mask = new BigInt64Array(B * T);
      const one = BigInt(1);
      for (let i = 0; i < mask.length; i++) if (inp.attentionMask[i]) mask[i] = one;
    }
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [B, S]),
      attention_mask: new ort.Tensor('int64', mask, [B, T]),
    };
    if (this.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', positionIds(mask, B, T, S), [B, S]);
    if (this.hasKvCache) Object.assign(feeds, past.tensors);
    Object.assign(feeds, this.extraFeeds);
    const out = await this.session.run(feeds);
    const present: KvCache = { batch: B, length: T, tensors: {} };
    for (const n of this.pastNames) {
      const t = out[n.replace('past_key_values', 'present')];
      if (!t) throw new Error(`model output ${n.replace('past_key_values', 'present')} missing`);
      present.tensors[n] = t;
    }
    return {
      seqLen: S,
      logits: out.logits.data as Float32Array,
      hidden: this.hiddenName ? (out[this.hiddenName].data as Float32Array) : null,
      present,
    };
  }

  /** A cache whose row r is row `rows[r]` of `cache` (repeat, reorder or drop rows). */
  selectRows(cache: KvCache, rows: ArrayLike<number>): KvCache {
    const out: KvCache = { batch: rows.length, length: cache.length, tensors: {} };
    for (const [name, t] of Object.entries(cache.tensors)) {
      const [, H, L, Dh] = t.dims;
      const rowSize = H * L * Dh;
      const src = t.data as Float32Array;
      const dst = new Float32Array(rows.length * rowSize);
      for (let r = 0; r < rows.length; r++) dst.set(src.subarray(rows[r] * rowSize, (rows[r] + 1) * rowSize), r * rowSize);
      out.tensors[name] = new ort.Tensor('float32', dst, [rows.length, H, L, Dh]);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** HF convention for models that take position_ids: cumsum(mask) − 1 (pads → 1), last S columns. */
function positionIds(mask: BigInt64Array, B: number, T: number, S: number): BigInt64Array {
  const out = new BigInt64Array(B * S);
  for (let b = 0; b < B; b++) {
    let c = 0;
    for (let t = 0; t < T; t++) {
      const m = mask[b * T + t] !== BigInt(0);
      c += m ? 1 : 0;
      if (t >= T - S) out[b * S + t - (T - S)] = BigInt(m ? c - 1 : 1);
    }
  }
  return out;
}
