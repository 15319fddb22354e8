/**
 * onnxruntime-node session over a model folder: one batched forward that returns logits,
 * the final hidden state and the updated KV cache. intraOpNumThreads defaults to 1: on 2
 * shared cores two ORT threads collapse under load (docs/design.md §3).
 */
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { UsageError } from '../core/errors.js';
import { type Dtype, type ModelFacts, graphIo, modelFamily, readConfig, readOnnx } from './folder.js';
import { exposeHiddenState } from './surgery.js';
import { type PositionHandling, externalDataFiles, hashModelFiles, positionHandling, stageSurgeredModel } from './layout.js';
import type { ModelProto } from './onnx-graph.js';

export interface SessionOptions {
  /** ORT intra-op threads (default 1). */
  threads?: number;
  /** Graph-surgery the final hidden state out of a logits-only export (default true). */
  needHidden?: boolean;
  /** Which weights file, as transformers.js's dtype: fp32 = onnx/model.onnx, q8 = model_quantized.onnx, fp16 = model_fp16.onnx, ... */
  dtype?: Dtype;
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
  /**
   * How the graph gets positions: 'position_ids' (an input, fed cumsum(mask) − 1), 'mask'
   * (computed from the mask inside the graph), 'absolute' (counted from the past length
   * whatever the mask says). For 'absolute' graphs forward() never shows the graph a
   * padded or masked column: it runs the rows compacted (see forwardCompacted).
   */
  readonly positions: PositionHandling;
  /** Element type of the KV cache (fp16 exports keep it in float16: raw bits in a Uint16Array). */
  readonly kvType: 'float32' | 'float16';
  /** The files the session reads (graph, external data), relative to the model folder. */
  readonly files: string[];
  /** sha256 of onnx/model.onnx (and its external data files) as stored (before any in-memory surgery). */
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
    positions: PositionHandling,
    files: string[],
    kvType: 'float32' | 'float16',
  ) {
    this.positions = positions;
    this.files = files;
    this.kvType = kvType;
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
    modelFamily(facts);
    const { bytes, model, rel } = readOnnx(dir, opts.dtype);
    const graphFile = path.join(dir, rel);
    // External weights (onnx/model.onnx_data) must exist before onnxruntime is asked to load them.
    const extFiles = externalDataFiles(model, graphFile);
    const hash = hashModelFiles(bytes, extFiles);
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new UsageError(`threads must be a positive integer, got ${threads}`);
    // Created from the file path (not from bytes) so that onnxruntime resolves external data.
    let loadFrom = graphFile;
    let cleanup: (() => void) | null = null;
    let hiddenName: string | null = graphIo(model).outputs.some((o) => o.name === 'last_hidden_state') ? 'last_hidden_state' : null;
    let edited = false;
    if (!hiddenName && opts.needHidden !== false) {
      try {
        exposeHiddenState(model);
        hiddenName = 'last_hidden_state';
        edited = true;
      } catch (err) {
        // No recognizable LM-head MatMul: the model still samples and scores, without hidden states.
        if (!(err instanceof UsageError)) throw err;
      }
    }
    if (opts.transform) {
      opts.transform(model);
      edited = true;
    }
    if (edited) {
      // The edited graph goes to a temporary folder next to links to the external data files.
      const staged = stageSurgeredModel(model, graphFile, extFiles);
      loadFrom = staged.file;
      cleanup = staged.cleanup;
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(loadFrom, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
    } catch (err) {
      throw new UsageError(`${graphFile}: onnxruntime cannot load it (${(err as Error).message.split('\n')[0]})`);
    } finally {
      // onnxruntime has read the staged graph (and mapped or copied the weights): drop it now.
      cleanup?.();
    }
    const files = [rel, ...extFiles.map((f) => path.relative(dir, f))];
    const pastType = graphIo(model).inputs.find((i) => i.name.startsWith('past_key_values.'))?.type;
    if (pastType && pastType !== 'float32' && pastType !== 'float16')
      throw new UsageError(`${graphFile}: KV cache of type ${pastType} is not supported (float32 or float16)`);
    return new LmSession(
      session,
      dir,
      facts,
      hash,
      hiddenName,
      positionHandling(model),
      files,
      pastType === 'float16' ? 'float16' : 'float32',
    );
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
    for (const n of this.pastNames) tensors[n] = new ort.Tensor(this.kvType, this.kvArray(0), [batch, f.nKvHead, 0, f.headDim]);
    return { batch, length: 0, tensors };
  }

  async forward(inp: ForwardInput): Promise<ForwardOutput> {
    const B = inp.batch;
    const S = inp.inputIds.length / B;
    const past = inp.past ?? this.emptyCache(B);
    const T = past.length + S;
    if (!Number.isInteger(S) || S < 1) throw new Error(`forward: ${inp.inputIds.length} ids do not split into ${B} rows`);
    if (inp.attentionMask.length !== B * T)
      throw new Error(`forward: attention mask has ${inp.attentionMask.length} entries, expected ${B}×${T}`);
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
    if (this.positions === 'absolute' && mask.some((m) => m === ZERO)) return this.forwardCompacted(ids, mask, past, B, S, T);
    return this.run(ids, mask, past, B, S, T);
  }

  /** One graph call with the mask as given. */
  private async run(ids: BigInt64Array, mask: BigInt64Array, past: KvCache, B: number, S: number, T: number): Promise<ForwardOutput> {
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [B, S]),
      attention_mask: new ort.Tensor('int64', mask, [B, T]),
    };
    if (this.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', positionIds(mask, B, T, S), [B, S]);
    if (this.hasKvCache) Object.assign(feeds, past.tensors);
    // Merged decoders (decoder_model_merged.onnx): the cache branch once there is a cache.
    if (this.inputNames.includes('use_cache_branch'))
      feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.of(past.length > 0 ? 1 : 0), [1]);
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
      logits: toFloat32(out.logits),
      hidden: this.hiddenName ? toFloat32(out[this.hiddenName]) : null,
      present,
    };
  }

  /**
   * forward() for graphs that count positions from the past length ('absolute'): a padded
   * or masked-out column would shift every later position. Rows with the same mask are run
   * together with their masked columns removed — past columns gathered out of the cache, new
   * columns out of the ids — so the graph sees each row exactly as if it were alone and
   * unpadded; outputs are scattered back into the padded layout (masked columns get zero
   * logits, hidden states and cache entries, which nothing reads: they stay masked).
   */
  private async forwardCompacted(
    ids: BigInt64Array,
    mask: BigInt64Array,
    past: KvCache,
    B: number,
    S: number,
    T: number,
  ): Promise<ForwardOutput> {
    const P = T - S;
    const V = this.facts.vocabSize;
    const groups = new Map<string, number[]>();
    for (let b = 0; b < B; b++) {
      let key = '';
      for (let t = 0; t < T; t++) key += mask[b * T + t] === ZERO ? '0' : '1';
      if (!key.endsWith('0'.repeat(S))) (groups.get(key) ?? groups.set(key, []).get(key)!).push(b);
    }
    const logits = new Float32Array(B * S * V);
    let hidden: Float32Array | null = null;
    const present: KvCache = { batch: B, length: T, tensors: {} };
    const presentData = new Map<string, { data: KvArray; H: number; Dh: number }>();
    for (const n of this.pastNames) {
      const [, H, , Dh] = past.tensors[n].dims;
      const data = this.kvArray(B * H * T * Dh);
      // keep the past columns as they were (masked ones included), row by row
      const src = past.tensors[n].data as KvArray;
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++) data.set(src.subarray((b * H + h) * P * Dh, ((b * H + h) * P + P) * Dh), (b * H + h) * T * Dh);
      presentData.set(n, { data, H, Dh });
    }
    for (const [key, rows] of groups) {
      const pastCols: number[] = [];
      const newCols: number[] = [];
      for (let t = 0; t < T; t++) if (key[t] === '1') (t < P ? pastCols : newCols).push(t);
      const n = rows.length,
        Pc = pastCols.length,
        Sc = newCols.length,
        Tc = Pc + Sc;
      const gIds = new BigInt64Array(n * Sc);
      rows.forEach((b, r) => newCols.forEach((t, k) => (gIds[r * Sc + k] = ids[b * S + t - P])));
      const gPast: KvCache = { batch: n, length: Pc, tensors: {} };
      for (const name of this.pastNames) {
        const [, H, , Dh] = past.tensors[name].dims;
        const src = past.tensors[name].data as KvArray;
        const dst = this.kvArray(n * H * Pc * Dh);
        rows.forEach((b, r) => {
          for (let h = 0; h < H; h++)
            pastCols.forEach((t, k) =>
              dst.set(src.subarray(((b * H + h) * P + t) * Dh, ((b * H + h) * P + t + 1) * Dh), ((r * H + h) * Pc + k) * Dh),
            );
        });
        gPast.tensors[name] = new ort.Tensor(this.kvType, dst, [n, H, Pc, Dh]);
      }
      const out = await this.run(gIds, new BigInt64Array(n * Tc).fill(ONE), gPast, n, Sc, Tc);
      const d = out.hidden ? out.hidden.length / (n * Sc) : 0;
      if (out.hidden && !hidden) hidden = new Float32Array(B * S * d);
      rows.forEach((b, r) => {
        newCols.forEach((t, k) => {
          const col = t - P;
          logits.set(out.logits.subarray((r * Sc + k) * V, (r * Sc + k + 1) * V), (b * S + col) * V);
          if (hidden && out.hidden) hidden.set(out.hidden.subarray((r * Sc + k) * d, (r * Sc + k + 1) * d), (b * S + col) * d);
        });
        for (const name of this.pastNames) {
          const { data, H, Dh } = presentData.get(name)!;
          const src = out.present.tensors[name].data as KvArray;
          for (let h = 0; h < H; h++)
            newCols.forEach((t, k) =>
              data.set(src.subarray(((r * H + h) * Tc + Pc + k) * Dh, ((r * H + h) * Tc + Pc + k + 1) * Dh), ((b * H + h) * T + t) * Dh),
            );
        }
      });
    }
    for (const [name, { data, H, Dh }] of presentData) present.tensors[name] = new ort.Tensor(this.kvType, data, [B, H, T, Dh]);
    if (this.hiddenName && !hidden) hidden = new Float32Array(B * S * this.hiddenSize);
    return { seqLen: S, logits, hidden, present };
  }

  private kvArray(n: number): KvArray {
    return this.kvType === 'float16' ? new Uint16Array(n) : new Float32Array(n);
  }

  /** A cache whose row r is row `rows[r]` of `cache` (repeat, reorder or drop rows). */
  selectRows(cache: KvCache, rows: ArrayLike<number>): KvCache {
    const out: KvCache = { batch: rows.length, length: cache.length, tensors: {} };
    for (const [name, t] of Object.entries(cache.tensors)) {
      const [, H, L, Dh] = t.dims;
      const rowSize = H * L * Dh;
      const src = t.data as KvArray;
      const dst = this.kvArray(rows.length * rowSize);
      for (let r = 0; r < rows.length; r++) dst.set(src.subarray(rows[r] * rowSize, (rows[r] + 1) * rowSize), r * rowSize);
      out.tensors[name] = new ort.Tensor(this.kvType, dst, [rows.length, H, L, Dh]);
    }
    return out;
  }

  private released = false;

  /** Frees the ONNX session; a second call does nothing (a policy's sessions may be shared). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release();
  }
}

const ONE = BigInt(1);
const ZERO = BigInt(0);

/** KV-cache storage: float32, or float16 bits (copied as they are, never converted). */
type KvArray = Float32Array | Uint16Array;

/** Logits / hidden states as float32 (fp16 exports return float16 bits). */
function toFloat32(t: ort.Tensor): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  if (t.type !== 'float16') throw new Error(`model output of type ${t.type}, expected float32 or float16`);
  const src = t.data as Uint16Array;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i]);
  return out;
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
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
