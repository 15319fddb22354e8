import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import ort from 'onnxruntime-node';
import { LmSession } from '../src/lm/session.js';
import { CharTokenizer } from '../src/lm/tokenizer.js';
import { prefixRewards } from '../src/lm/scorer.js';
import { scoreRows, type RewardSpec } from '../src/finetune/score.js';
import type { ZConstraints, ZSample } from '../src/finetune/rollout.js';

/**
 * An independent reference for the LM reward of docs/design.md eq. (LM): log p_LM(X Z Y) one
 * token at a time, each next-token distribution from its own onnxruntime call on the full,
 * unpadded prefix (no KV cache, no batching, no packing, no code from src/lm/scorer.ts or
 * src/finetune/score.ts). The prior, the likelihood, the stop term and the prefix rewards
 * are rebuilt from these per-token log-softmaxes in float64 and compared with scoreRows.
 */
class Reference {
  private cache = new Map<string, Float64Array>();
  private constructor(
    private readonly s: ort.InferenceSession,
    private readonly heads: number,
    private readonly headDim: number,
  ) {}

  static async open(dir: string): Promise<Reference> {
    const cfg = JSON.parse(readFileSync(`${dir}/config.json`, 'utf8'));
    // one thread, as LmSession: two ORT threads collapse on shared cores
    const s = await ort.InferenceSession.create(`${dir}/onnx/model.onnx`, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    return new Reference(s, cfg.n_head, cfg.n_embd / cfg.n_head);
  }

  /** log p(· | prefix) over the vocabulary, from the logits of the prefix's last position. */
  async next(prefix: number[]): Promise<Float64Array> {
    const key = prefix.join(',');
    const hit = this.cache.get(key);
    if (hit) return hit;
    const T = prefix.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(prefix, BigInt), [1, T]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]),
    };
    for (const name of this.s.inputNames) {
      if (name === 'position_ids')
        feeds[name] = new ort.Tensor(
          'int64',
          BigInt64Array.from({ length: T }, (_, i) => BigInt(i)),
          [1, T],
        );
      if (name.startsWith('past_key_values.'))
        feeds[name] = new ort.Tensor('float32', new Float32Array(0), [1, this.heads, 0, this.headDim]);
    }
    const out = await this.s.run(feeds);
    const logits = out.logits.data as Float32Array;
    const V = logits.length / T;
    const last = Float64Array.from(logits.subarray((T - 1) * V, T * V));
    let m = -Infinity;
    for (const v of last) m = Math.max(m, v);
    let sum = 0;
    for (const v of last) sum += Math.exp(v - m);
    const lse = m + Math.log(sum);
    const lp = last.map((v) => v - lse);
    this.cache.set(key, lp);
    return lp;
  }

  /** log Σ_{v ∈ allowed} p(v | prefix): the normalizer of the 'allowed' prior. */
  async allowedMass(prefix: number[], allowed: number[]): Promise<number> {
    const lp = await this.next(prefix);
    let s = 0;
    for (const v of allowed) s += Math.exp(lp[v]);
    return Math.log(s);
  }

  /**
   * For one (X, Z, Y): prior(z_1..j) and the stop term at j, log p(Y | X z_1..j) for every
   * j = 0..|Z|, and the full reward pieces at j = |Z|.
   */
  async terms(x: number[], z: number[], y: number[], c: ZConstraints, prior: 'lm' | 'allowed') {
    const allowed = [...(c.allowedIds ?? []), c.stopId];
    const priorPrefix = [0];
    const stop: number[] = [];
    const lik: number[] = [];
    for (let j = 0; j <= z.length; j++) {
      const ctx = [...x, ...z.slice(0, j)];
      const lp = await this.next(ctx);
      if (prior === 'allowed') {
        const norm = await this.allowedMass(ctx, allowed);
        stop.push(lp[c.stopId] - norm);
        if (j < z.length) priorPrefix.push(priorPrefix[j] + lp[z[j]] - norm);
      } else {
        stop.push(0); // with the LM prior, the stop token is the first token of Y
        if (j < z.length) priorPrefix.push(priorPrefix[j] + lp[z[j]]);
      }
      let l = 0;
      for (let t = 0; t < y.length; t++) l += (await this.next([...ctx, ...y.slice(0, t)]))[y[t]];
      lik.push(l);
    }
    return { priorPrefix, stop, lik };
  }
}

const tok = new CharTokenizer();
const enc = (s: string) => tok.encode(s);
/** Z with the calculator's results marked as environment steps (isAction = 0), as the rollout records them. */
function zOf(text: string, toolSpans: string[] = []): ZSample {
  const tokens = enc(text);
  const isAction = new Uint8Array(tokens.length).fill(1);
  let from = 0;
  for (const span of toolSpans) {
    const at = text.indexOf(span, from);
    assert.ok(at >= 0, span);
    isAction.fill(0, at, at + span.length);
    from = at + span.length;
  }
  return { tokens, isAction };
}

async function check(model: string, rows: { x: string; z: ZSample; y: string }[], c: ZConstraints, spec: RewardSpec) {
  const session = await LmSession.open(model);
  const ref = await Reference.open(model);
  const xs = rows.map((r) => enc(r.x)),
    ys = rows.map((r) => enc(r.y)),
    zs = rows.map((r) => r.z);
  const got = await scoreRows(session, xs, zs, ys, c, spec, { prefix: true, chunk: 2 });
  const pr = await prefixRewards(
    session,
    xs,
    zs.map((z) => z.tokens),
    ys,
    { chunk: 3 },
  );
  const tol = 2e-4; // float32 logits, different summation orders
  for (let b = 0; b < rows.length; b++) {
    const z = zs[b].tokens;
    const r = await ref.terms(xs[b], z, ys[b], c, spec.prior);
    const m = z.length;
    const what = `${model} row ${b} (${spec.prior} prior, w ${spec.likelihoodWeight}, T ${spec.temperature})`;
    const near = (g: number, want: number, q: string) => assert.ok(Math.abs(g - want) < tol, `${what}: ${q} ${g} vs reference ${want}`);
    near(got[b].logPrior, r.priorPrefix[m] + r.stop[m], 'log prior(Z) (stop term included)');
    near(got[b].logLik, r.lik[m], 'log-likelihood log p(Y | X Z)');
    near(got[b].logR, (r.priorPrefix[m] + r.stop[m] + spec.likelihoodWeight * r.lik[m]) / spec.temperature, 'log R(Z)');
    // decision nodes: the policy's tokens plus the final stop
    const nodes = [...Array.from(zs[b].isAction.keys()).filter((j) => zs[b].isAction[j]), m];
    assert.deepEqual(got[b].nodes, nodes, `${what}: decision nodes`);
    got[b].nodes.forEach((j, k) =>
      near(
        got[b].prefixLogR![k],
        (r.priorPrefix[j] + r.stop[j] + spec.likelihoodWeight * r.lik[j]) / spec.temperature,
        `prefix reward log R(z_1..${j} ⊤)`,
      ),
    );
    // log R split over the edges: an inner edge pays the prior of the tokens it writes (action
    // and calculator result), the exit edge the stop term and the likelihood
    // (tool tokens before the first node, as row 1's leading " 6" here, go to the first edge)
    got[b].nodes.forEach((j, k) => {
      const last = k === nodes.length - 1;
      const from = k === 0 ? 0 : j;
      const want = last
        ? (r.priorPrefix[m] - r.priorPrefix[from] + r.stop[m] + spec.likelihoodWeight * r.lik[m]) / spec.temperature
        : (r.priorPrefix[nodes[k + 1]] - r.priorPrefix[from]) / spec.temperature;
      near(got[b].edgeLogR[k], want, `edge reward of node ${k} (z_1..${j})`);
    });
    near(
      got[b].edgeLogR.reduce((t, v) => t + v, 0),
      got[b].logR,
      'the edge rewards sum to log R',
    );
    for (let j = 0; j <= m; j++) near(pr.rewards[b][j], r.lik[j], `prefix likelihood log p(Y | X z_1..${j})`);
    for (let j = 0; j < m; j++)
      near(pr.zLogProbs[b][j], (await ref.next([...xs[b], ...z.slice(0, j)]))[z[j]], `prior term log p(z_${j + 1} | X z_1..${j})`);
    // the check must have teeth: the prefix rewards differ along Z and from the full reward
    if (m > 1) assert.ok(Math.abs(r.lik[0] - r.lik[m]) > 0.05, `${what}: likelihood should change along Z`);
  }
  await session.release();
}

test('arithmetic reward on models/arith-char equals the token-by-token ONNX reference (LM and allowed prior, calculator steps)', async () => {
  const digits = [...'0123456789 +-=,'];
  const c: ZConstraints = { minLength: 1, maxLength: 48, allowedIds: enc(digits.join('')), tool: 'calculator', stopId: enc('.')[0] };
  const rows = [
    { x: 'Question: 7 + 5 + 9 = ? Answer:', z: zOf(' 7 + 5 = 12, 12 + 9 = 21', [' 12', ' 21']), y: '. The answer is 21.' },
    { x: 'Question: 6 - 0 - 4 = ? Answer:', z: zOf(' 6 - 0 = 6, 6 - 4 = 2', [' 6', ' 2']), y: '. The answer is 2.' },
    // a wrong rationale, and a short Z: rows of different lengths share one padded batch
    { x: 'Question: 0 - 9 + 7 = ? Answer:', z: zOf(' 0 - 9 = 9, 9 + 7 = 16', [' 9', ' 16']), y: '. The answer is -2.' },
    { x: 'Question: 2 - 1 + 9 = ? Answer:', z: zOf(' 1'), y: '. The answer is 10.' },
  ];
  await check('models/arith-char', rows, c, { prior: 'lm', likelihoodWeight: 1, temperature: 1 });
  await check('models/arith-char', rows, c, { prior: 'allowed', likelihoodWeight: 2, temperature: 0.5 });
});

test('infill reward on models/english-char equals the token-by-token ONNX reference (allowed prior with its stop term, and LM prior)', async () => {
  const c: ZConstraints = {
    minLength: 0,
    maxLength: 24,
    allowedIds: enc('abcdefghijklmnopqrstuvwxyz '),
    tool: 'none',
    stopId: tok.eosTokenId,
  };
  const rows = [
    { x: 'the cat sat on', z: zOf(' the mat and'), y: ' slept.' },
    { x: 'she went', z: zOf(' home'), y: ' early.' },
    { x: 'a', z: zOf(''), y: ' dog ran.' },
  ];
  await check('models/english-char', rows, c, { prior: 'allowed', likelihoodWeight: 1, temperature: 1 });
  await check('models/english-char', rows, c, { prior: 'lm', likelihoodWeight: 3, temperature: 2 });
});
