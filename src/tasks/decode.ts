/**
 * Decoding latent sequences Z for evaluation, with the same environment as training
 * (docs/design.md §2 (LM)): the constraints of the run (min/max length, allowed tokens, the stop
 * token, z.stop) and, for arithmetic, the calculator tool. The policy is a fine-tuned head (a sampler
 * hook) or none (the base LM). Three decoders, each giving K sequences per prompt (the
 * sample budget every method gets):
 * - sample: ancestral sampling at a temperature (1 = the policy itself);
 * - greedy: argmax at every step (one sequence, repeated K times);
 * - beam: beam search of width K over log P(Z) (sum of step log-probs, no length
 *   normalization; finished beams compete with open ones), returning the K best.
 */
import type { LmSession } from '../lm/session.js';
import type { Tokenizer } from '../lm/tokenizer.js';
import { sample, type PolicyHook } from '../lm/sampler.js';
import { textTrigger } from '../lm/text-stop.js';
import { packLeft } from '../lm/batch.js';
import { Rng } from '../core/rng.js';
import { maskedLogSoftmax } from '../core/math.js';
import { calculatorCompletion } from '../text/arithmetic.js';
import { actionMask, calculatorTrigger, sampleZ, type ZConstraints, type ZSample } from '../finetune/rollout.js';

export type DecodeSpec = { kind: 'sample'; temperature: number } | { kind: 'greedy' } | { kind: 'beam' };

/** What decoding needs: the frozen LM, its tokenizer, the Z constraints and the policy (none = base LM). */
export interface Decoder {
  /** the model Z is decoded with (the frozen LM, or a LoRA run's adapted one) */
  session: LmSession;
  /**
   * The frozen base LM that defines p_LM(X Z Y): it reads Y off X Z (the arithmetic answer,
   * the subjectivity label, the infill's log p(Z Y | X)), as the reward did in training. Absent:
   * `session` is that model (the base itself, or a head policy that hooks into it).
   */
  baseSession?: LmSession;
  tok: Tokenizer;
  constraints: ZConstraints;
  hook?: PolicyHook;
}

export function describeDecode(d: DecodeSpec): string {
  return d.kind === 'sample' ? `sample T=${d.temperature}` : d.kind;
}

const CHUNK = 256;

/** K sequences Z for each prompt (rows in prompt order). */
export async function decodeZ(dec: Decoder, prompts: number[][], k: number, spec: DecodeSpec, rng: Rng): Promise<ZSample[][]> {
  if (spec.kind === 'beam') return beamSearchZ(dec, prompts, k);
  const temperature = spec.kind === 'greedy' ? 0 : spec.temperature;
  const reps = spec.kind === 'greedy' ? 1 : k;
  const rows: number[][] = [];
  for (const p of prompts) for (let j = 0; j < reps; j++) rows.push(p);
  const flat: ZSample[] = [];
  for (let i = 0; i < rows.length; i += CHUNK) {
    flat.push(
      ...(await sampleZ(dec.session, dec.tok, rows.slice(i, i + CHUNK), {
        constraints: dec.constraints,
        temperature,
        policy: dec.hook,
        rng,
      })),
    );
  }
  return prompts.map((_, i) => Array.from({ length: k }, (_, j) => flat[i * reps + (reps === 1 ? 0 : j)]));
}

interface Beam {
  tokens: number[];
  isAction: number[];
  score: number;
  done: boolean;
}

/**
 * Beam search of width W over Z: every open beam is extended by its W best actions (stop
 * included where allowed); the W best of all candidates (finished ones included) survive.
 * Tool tokens are appended after "=" as in sampling and cost nothing. Full forwards (no KV
 * cache): beams reorder every step. Ties break by beam order, then token id.
 */
export async function beamSearchZ(dec: Decoder, prompts: number[][], W: number): Promise<ZSample[][]> {
  const { session, tok, constraints: c, hook } = dec;
  const V = session.vocabSize,
    d = session.hiddenSize,
    stop = c.stopId;
  const calc = c.tool === 'calculator' ? calculatorTrigger(tok) : null;
  const beams: Beam[][] = prompts.map(() => [{ tokens: [], isAction: [], score: 0, done: false }]);
  const mask = new Uint8Array(V);
  for (;;) {
    const open: [number, number][] = [];
    beams.forEach((bs, i) => bs.forEach((b, j) => !b.done && open.push([i, j])));
    if (open.length === 0) break;
    const logp = new Map<string, Float64Array>();
    for (let o0 = 0; o0 < open.length; o0 += CHUNK) {
      const part = open.slice(o0, o0 + CHUNK);
      const packed = packLeft(
        part.map(([i, j]) => [...prompts[i], ...beams[i][j].tokens]),
        session.facts.padTokenId,
      );
      const L = packed.len;
      const f = await session.forward({ batch: part.length, inputIds: packed.ids, attentionMask: packed.mask });
      let logits: Float32Array = new Float32Array(part.length * V);
      const hidden = new Float32Array(part.length * d);
      part.forEach((_, r) => {
        logits.set(f.logits.subarray((r * L + L - 1) * V, (r * L + L) * V), r * V);
        if (f.hidden) hidden.set(f.hidden.subarray((r * L + L - 1) * d, (r * L + L) * d), r * d);
      });
      if (hook) logits = hook({ step: 0, active: new Uint8Array(part.length).fill(1), hidden, logits });
      part.forEach(([i, j], r) => {
        actionMask(c, V, beams[i][j].tokens.length, mask);
        const lp = new Float64Array(V);
        maskedLogSoftmax(logits, r * V, V, mask, 0, lp);
        logp.set(`${i},${j}`, lp);
      });
    }
    beams.forEach((bs, i) => {
      const cands: Beam[] = [];
      bs.forEach((b, j) => {
        if (b.done) return void cands.push(b);
        const lp = logp.get(`${i},${j}`)!;
        const ids = Array.from({ length: V }, (_, v) => v).filter((v) => lp[v] > -Infinity);
        ids.sort((a, b2) => lp[b2] - lp[a] || a - b2);
        for (const v of ids.slice(0, W)) {
          if (v === stop) {
            cands.push({ tokens: b.tokens, isAction: b.isAction, score: b.score + lp[v], done: true });
            continue;
          }
          const nb: Beam = { tokens: [...b.tokens, v], isAction: [...b.isAction, 1], score: b.score + lp[v], done: false };
          if (calc?.(nb.tokens)) {
            const completion = calculatorCompletion(tok.decode(nb.tokens));
            if (completion !== null) for (const id of tok.encode(completion)) nb.tokens.push(id), nb.isAction.push(0);
          }
          cands.push(nb);
        }
      });
      // stable sort: equal scores keep beam order, then token order
      beams[i] = cands
        .map((b, k) => ({ b, k }))
        .sort((x, y) => y.b.score - x.b.score || x.k - y.k)
        .slice(0, W)
        .map((x) => x.b);
    });
  }
  return beams.map((bs) => {
    const out = bs.map((b) => ({ tokens: b.tokens, isAction: Uint8Array.from(b.isAction), score: b.score }));
    while (out.length < W) out.push(out[0]); // a Z space smaller than W: repeat the best
    return out;
  });
}

/**
 * The base LM's greedy continuation after each prefix (up to a newline, EOS, `maxNew`
 * tokens or the context window): the Y a method's Z leads to. No cap by default: after an
 * empty or short Z the continuation must hold the whole rationale and answer.
 */
export async function continueGreedy(session: LmSession, tok: Tokenizer, prefixes: number[][], maxNew = Infinity): Promise<string[]> {
  // a newline ends the line whatever token carries it (BPE merges "\n" into ".\n" and the like)
  const newline = textTrigger(tok, '\n', () => true);
  const out: string[] = new Array(prefixes.length).fill('');
  // rows are grouped by the room they have left, so no row runs past the context window
  const byRoom = new Map<number, number[]>();
  prefixes.forEach((p, i) => {
    const room = Math.min(maxNew, session.facts.nCtx - p.length);
    if (room < 1) return;
    if (!byRoom.has(room)) byRoom.set(room, []);
    byRoom.get(room)!.push(i);
  });
  for (const [room, idx] of byRoom) {
    for (let i0 = 0; i0 < idx.length; i0 += CHUNK) {
      const part = idx.slice(i0, i0 + CHUNK);
      const r = await sample(
        session,
        part.map((i) => prefixes[i]),
        { maxNewTokens: room, temperature: 0, stopWhen: (_b, gen) => newline(gen), keepHidden: false, rng: new Rng(0) },
      );
      part.forEach((i, b) => {
        const ids = Array.from(r.tokens.subarray(b * r.steps, b * r.steps + r.lengths[b]));
        out[i] = tok.decode(ids, true).replace(/\n[\s\S]*$/, '');
      });
    }
  }
  return out;
}
