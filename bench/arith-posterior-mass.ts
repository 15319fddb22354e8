/**
 * Where the GFlowNet's target puts its mass on arithmetic: for each question (X, Y) the
 * posterior p(Z | X, Y) ∝ R(Z) of eq. (LM) (docs/design.md, reward.prior lm), estimated per
 * question, and its share on
 *   - correct chains: Z is the carried rationale " a op b = r1, r1 op c = r2, ..." exactly,
 *   - final-correct chains: the last result written in Z is the answer (however reached),
 *   - one-step chains: Z holds a single "a op b = c" step (with 3+ operands: stops early),
 * under the reward as configured (prior weight a = 1, T_R = 1, w = 1) and under variants
 * log R = (a · log p_LM(Z | X) + w · log p_LM(Y | X Z)) / T_R. Every variant reweights the same
 * chains.
 *
 * The normalizer Z(X, Y) = Σ_Z R(Z) is split into an enumerated part and a sampled part:
 *   Ẑ = Σ_{e ∈ E} R(e) + (1/M) Σ_i [Z_i ∉ E] R(Z_i) / q(Z_i),
 * E = the correct chain and the 200 one-step chains " a op b =" on digits (exact terms), the
 * Z_i drawn from a defensive mixture q = β q_run + (1 − β) q_base of the trained policy of a
 * run folder (e.g. the SFT LoRA adapter, which writes carried chains) and the frozen base
 * model (which writes the non-carrying chains the SFT policy rarely samples): M·β samples from
 * the first, the rest from the second, each weighted by the mixture density (deterministic
 * mixture importance sampling: unbiased for the sampled part). The masses are ratios to Ẑ
 * (consistent, biased high when Ẑ misses mass, which larger M finds). log q_run and log q_base
 * are the policies' log-probabilities of their decisions renormalized over the allowed
 * actions (the trainer's log P_F: score.ts baseLogits); log p_LM(Z | X) and log p_LM(Y | X Z)
 * are the reward's terms from the scoreRows the trainer calls. Reported per variant: the
 * effective sample size of the sampled part, ESS = (Σ w)² / Σ w², and its share of Ẑ (how much
 * of the estimate rests on importance weights), and an exact upper bound on the correct
 * chain's mass whatever the IS variance: R(correct) / Σ R over the distinct chains seen, and
 * "beaten": on how many questions some other chain seen has a higher reward than the correct one.
 * Variant "run" (a:T:w:run) takes the prior from the run's policy instead of the base LM:
 * log p_run(Z ⊤ | X) + w · log p_LM(Y without its stop token | X Z ⊤).
 *
 *   node dist/bench/arith-posterior-mass.js --run RUN [--data data/arithmetic/pool_1000.json]
 *     [--offset 0 --limit 50 --samples 128 --run-share 0.5 --seed 0]
 *     [--variants "1:1,0.5:1,1:0.5,1:1:2,1:1:1:run"] [--out FILE.jsonl] [--json]
 * A variant is a:T[:w[:lm|run]] (prior weight, reward temperature, likelihood weight, prior
 * model). --out writes one JSON line per question (masses, ESS, the heaviest chains).
 * --policies RUN1,RUN2,base [--policy-samples 64] compares policies with the target under the
 * reward as configured, on their own samples: L(q) = E_q[log q − log R], which on-policy TB
 * drives down (KL(q ‖ p) − log Z: lower is closer to the target, and differences between
 * policies need no Ẑ), KL(q ‖ p) ≈ L(q) + log Ẑ (log Ẑ is biased low, so this is too), the
 * mean log R, the entropy, and the policy's shares of correct, final-correct, one-step chains.
 */
import { writeFileSync } from 'node:fs';
import { logSumExp } from '../src/core/math.js';
import { Rng } from '../src/core/rng.js';
import { UsageError } from '../src/core/errors.js';
import { encodeX } from '../src/lm/tokenizer.js';
import type { LmSession } from '../src/lm/session.js';
import { loadArithmetic, parseQuery, rationale } from '../src/text/arithmetic.js';
import { readRunConfig } from '../src/finetune/run.js';
import { sampleZ, type ZConstraints, type ZSample } from '../src/finetune/rollout.js';
import { scoreRows, type ScoredRow } from '../src/finetune/score.js';
import { goldZ } from '../src/finetune/examples.js';
import { loadRunPolicy, releasePolicy } from '../src/tasks/policy.js';
import { benchFlags } from './flags.js';

const flags = benchFlags(
  'node dist/bench/arith-posterior-mass.js --run RUN [options]',
  {
    run: '',
    data: 'data/arithmetic/pool_1000.json',
    offset: '0',
    limit: '50',
    samples: '128',
    'run-share': '0.5',
    seed: '0',
    variants: '1:1,0.5:1,0.25:1,2:1,1:0.5,0.5:0.5,0.25:0.5,1:1.5,1:1:2,1:1:1:run',
    out: '',
    policies: '',
    'policy-samples': '64',
  },
  ['json'],
);

interface Variant {
  a: number;
  T: number;
  w: number;
  prior: 'lm' | 'run';
}

/** Decisions' log-probability under the policy a row was scored with (renormalized over allowed actions). */
function logPolicy(r: ScoredRow, V: number): number {
  let s = 0;
  r.actions.forEach((a, k) => (s += r.baseLogits[k * V + a]));
  return s;
}

/** The correct chain with its results left to the calculator: " a op b =, r op c =, ...". */
function openForm(operands: number[], ops: string[]): string {
  return ` ${rationale(operands, ops).text.replace(/ = -?\d+/g, ' =')}`;
}

/** Every one-step chain " a op b =" on digits a, b (what a policy that stops early writes). */
function oneStepChains(): string[] {
  const out: string[] = [];
  for (let a = 0; a <= 9; a++) for (let b = 0; b <= 9; b++) for (const op of ['+', '-']) out.push(` ${a} ${op} ${b} =`);
  return out;
}

/** The "a op b = c" steps of a decoded Z. */
function steps(z: string): { a: number; op: string; b: number; c: number }[] {
  return [...z.matchAll(/(-?\d+) ([+-]) (-?\d+) = (-?\d+)/g)].map((m) => ({ a: Number(m[1]), op: m[2], b: Number(m[3]), c: Number(m[4]) }));
}

/** Per-chain scores a variant's log R is made of (base LM and run policy; stop = log p(stop | X Z)). */
interface ChainScores {
  base: ScoredRow[];
  run: ScoredRow[];
  stopBase: number[];
  stopRun: number[];
}

/** log R of each chain under a variant (see the header). */
function variantLogR(v: Variant, c: ChainScores): number[] {
  return c.base.map((b, i) =>
    v.prior === 'run'
      ? (v.a * (c.run[i].logPrior + c.stopRun[i]) + v.w * (b.logLik - c.stopBase[i])) / v.T
      : (v.a * b.logPrior + v.w * b.logLik) / v.T,
  );
}

/** The base LM's and the run policy's scores of chains, with the stop terms. */
async function chainScores(
  base: LmSession,
  run: LmSession,
  x: number[],
  y: number[],
  zs: ZSample[],
  c: ZConstraints,
): Promise<ChainScores> {
  const spec = { prior: 'lm' as const, likelihoodWeight: 1, temperature: 1 };
  const xs = zs.map(() => x),
    ys = zs.map(() => y),
    stopY = zs.map(() => y.slice(0, 1));
  const onBase = await scoreRows(base, xs, zs, ys, c, spec, { prefix: false });
  const onRun = run === base ? onBase : await scoreRows(run, xs, zs, ys, c, spec, { prefix: false });
  // the first token of Y is the stop token ".": its log-probability is the stop term
  const stopBase = (await scoreRows(base, xs, zs, stopY, c, spec, { prefix: false })).map((r) => r.logLik);
  const stopRun = run === base ? stopBase : (await scoreRows(run, xs, zs, stopY, c, spec, { prefix: false })).map((r) => r.logLik);
  return { base: onBase, run: onRun, stopBase, stopRun };
}

async function main(): Promise<void> {
  if (!flags.run) throw new UsageError('--run RUN is required (a run folder with a trained policy, e.g. the SFT LoRA run)');
  const M = Number(flags.samples),
    beta = Number(flags['run-share']);
  if (!(Number.isInteger(M) && M >= 1)) throw new UsageError(`--samples must be a positive integer (got ${flags.samples})`);
  if (!(beta >= 0 && beta <= 1)) throw new UsageError(`--run-share must be in [0, 1] (got ${flags['run-share']})`);
  const mRun = Math.round(M * beta),
    mBase = M - mRun;
  const cfg = readRunConfig(flags.run);
  if (cfg.reward.prior !== 'lm')
    throw new UsageError(`${flags.run}: reward.prior is ${cfg.reward.prior}; this measures eq. (LM) with prior lm`);
  const variants: Variant[] = String(flags.variants)
    .split(',')
    .map((s) => {
      const [a, T, w, prior] = s.split(':');
      const v: Variant = {
        a: Number(a),
        T: Number(T),
        w: w ? Number(w) : cfg.reward.likelihoodWeight,
        prior: prior === 'run' ? 'run' : 'lm',
      };
      if (!(v.a > 0 && v.T > 0 && v.w > 0) || (prior !== undefined && prior !== 'run' && prior !== 'lm'))
        throw new UsageError(`--variants: "${s}" is not a:T[:w[:lm|run]] with positive numbers`);
      return v;
    });
  const pol = await loadRunPolicy(flags.run, cfg);
  const base: LmSession = pol.baseSession ?? pol.session;
  const V = base.vocabSize;
  const items = loadArithmetic(flags.data).slice(Number(flags.offset), Number(flags.offset) + Number(flags.limit));
  const rng = new Rng(Number(flags.seed));
  const t0 = performance.now();
  const perQ: Record<string, unknown>[] = [];
  for (const [qi, it] of items.entries()) {
    const x = encodeX(pol.tok, it.str_query);
    const y = pol.tok.encode(it.str_sol ?? `. The answer is ${it.num_sol}.`);
    const { operands, ops } = parseQuery(it.str_query);
    const gold = ' ' + rationale(operands, ops).text;
    // samples from the run's policy, then from the base model; both at T = 1, no ε
    const zRun =
      mRun > 0
        ? await sampleZ(pol.session, pol.tok, Array(mRun).fill(x), { constraints: pol.constraints, temperature: 1, policy: pol.hook, rng })
        : [];
    const zBase =
      mBase > 0 ? await sampleZ(base, pol.tok, Array(mBase).fill(x), { constraints: pol.constraints, temperature: 1, rng }) : [];
    const zs: ZSample[] = [...zRun, ...zBase];
    // the enumerated chains: the correct one and every one-step chain on digits
    const enumOpen = [openForm(operands, ops), ...oneStepChains()];
    const enumZ = [...new Set(enumOpen)].map((t) => goldZ(t, pol.tok, true));
    const all = [...zs, ...enumZ];
    const nS = zs.length;
    const sc = await chainScores(base, pol.session, x, y, all, pol.constraints);
    const onBase = sc.base,
      onRun = sc.run;
    const texts = all.map((z) => pol.tok.decode(z.tokens));
    const enumText = new Set(texts.slice(nS));
    if (!enumText.has(gold)) throw new Error(`the correct chain of ${it.str_query} decodes as another text`);
    const kinds = texts.map((t) => {
      const st = steps(t);
      return { correct: t === gold, final: st.length > 0 && st[st.length - 1].c === it.num_sol, oneStep: st.length === 1 };
    });
    // log q of the mixture; an empty share contributes nothing
    const logQ = zs.map((_, i) => {
      const qr = mRun > 0 ? Math.log(beta) + logPolicy(onRun[i], V) : -Infinity;
      const qb = mBase > 0 ? Math.log(1 - beta) + logPolicy(onBase[i], V) : -Infinity;
      return logSumExp([qr, qb]);
    });
    const inEnum = texts.map((t, i) => i >= nS || enumText.has(t));
    const gi = texts.indexOf(gold, nS);
    const res: Record<string, unknown> = {
      index: Number(flags.offset) + qi,
      query: it.str_query,
      answer: it.num_sol,
      operands: operands.length,
      gold,
      goldLogPrior: onBase[gi].logPrior,
      goldLogLik: onBase[gi].logLik,
      // what the proposals themselves sample: share of correct chains in each half
      runCorrect: kinds.slice(0, mRun).filter((k) => k.correct).length / Math.max(1, mRun),
      baseCorrect: kinds.slice(mRun, nS).filter((k) => k.correct).length / Math.max(1, mBase),
      sampledInEnum: inEnum.slice(0, nS).filter(Boolean).length / nS,
      variants: [] as unknown[],
    };
    // terms of Ẑ: R(e) for each enumerated chain, R/q / M for each sample outside them
    const logTerms = (logR: number[]) => all.map((_, i) => (i >= nS ? logR[i] : inEnum[i] ? -Infinity : logR[i] - logQ[i] - Math.log(nS)));
    for (const v of variants) {
      const logR = variantLogR(v, sc);
      const logTerm = logTerms(logR);
      const m = Math.max(...logTerm);
      const u = logTerm.map((l) => Math.exp(l - m));
      const S = u.reduce((s, t) => s + t, 0);
      const mass = (f: (i: number) => boolean) => u.reduce((s, t, i) => s + (f(i) ? t : 0), 0) / S;
      const isPart = u.slice(0, nS);
      const Sis = isPart.reduce((s, t) => s + t, 0);
      const S2 = isPart.reduce((s, t) => s + t * t, 0);
      // the heaviest distinct chains, to read what the posterior prefers
      const byText = new Map<string, number>();
      u.forEach((t, i) => byText.set(texts[i], (byText.get(texts[i]) ?? 0) + t / S));
      const top = [...byText].sort((p, q) => q[1] - p[1]).slice(0, 3);
      // exact, whatever the IS variance: the correct chain's share among the distinct chains seen
      const distinct = new Map<string, number>();
      texts.forEach((t, i) => distinct.set(t, logR[i]));
      const logSeen = logSumExp([...distinct.values()]);
      (res.variants as unknown[]).push({
        a: v.a,
        T: v.T,
        w: v.w,
        prior: v.prior,
        correctUpper: Math.exp(distinct.get(gold)! - logSeen),
        // distinct chains seen with a higher reward than the correct one (exact)
        aboveCorrect: [...distinct].filter(([t, l]) => t !== gold && l > distinct.get(gold)!).length,
        logZ: m + Math.log(S),
        correct: mass((i) => kinds[i].correct),
        final: mass((i) => kinds[i].final),
        oneStep: mass((i) => kinds[i].oneStep),
        sampledShare: Sis / S,
        ess: Sis > 0 ? (Sis * Sis) / S2 : 0,
        top: top.map(([z, p]) => ({ z, p: Number(p.toFixed(3)) })),
      });
    }
    // log Ẑ under the reward as configured (a = 1, T = 1, w = 1), for the policies' KL below
    res.logZ1 = logSumExp(logTerms(variantLogR({ a: 1, T: 1, w: 1, prior: 'lm' }, sc)));
    res.x = x;
    res.y = y;
    perQ.push(res);
    if (!flags.json) process.stderr.write(`\r${qi + 1}/${items.length} questions, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  if (!flags.json) process.stderr.write('\n');
  // policies compared with the target: their own samples, L(q) = E_q[log q − log R] (what
  // on-policy TB drives down: KL(q ‖ p) − log Z) and KL(q ‖ p) ≈ L(q) + log Ẑ; differences of L
  // between policies need no Ẑ
  const policyRows: Record<string, unknown>[] = [];
  const prng = rng.fork();
  const K = Number(flags['policy-samples']);
  for (const name of String(flags.policies)
    .split(',')
    .filter((p) => p.length > 0)) {
    const other = name === 'base' ? null : name === flags.run ? pol : await loadRunPolicy(name, readRunConfig(name));
    const perQp = [];
    for (const r of perQ) {
      const x = r.x as number[],
        y = r.y as number[];
      const zs = await sampleZ(other ? other.session : base, pol.tok, Array(K).fill(x), {
        constraints: pol.constraints,
        temperature: 1,
        policy: other?.hook,
        rng: prng,
      });
      const sc = await chainScores(base, pol.session, x, y, zs, pol.constraints);
      const onP = other
        ? other === pol
          ? sc.run
          : await scoreRows(
              other.session,
              zs.map(() => x),
              zs,
              zs.map(() => y),
              pol.constraints,
              { prior: 'lm', likelihoodWeight: 1, temperature: 1 },
              { prefix: false },
            )
        : sc.base;
      const texts = zs.map((z) => pol.tok.decode(z.tokens));
      const logQ = onP.map((row) => logPolicy(row, V));
      const logR = sc.base.map((row) => row.logR);
      const L = logQ.reduce((acc, q, i) => acc + q - logR[i], 0) / K;
      // E_q[log q − log R] under every variant (which policy the objective prefers, per reward)
      const Lv = variants.map((v) => {
        const lr = variantLogR(v, sc);
        return logQ.reduce((acc, q, i) => acc + q - lr[i], 0) / K;
      });
      const st = texts.map(steps);
      perQp.push({
        operands: r.operands as number,
        L,
        Lv,
        kl: L + (r.logZ1 as number),
        logR: logR.reduce((a, b) => a + b, 0) / K,
        entropy: -logQ.reduce((a, b) => a + b, 0) / K,
        correct: texts.filter((t) => t === r.gold).length / K,
        final: st.filter((u) => u.length > 0 && u[u.length - 1].c === (r.answer as number)).length / K,
        oneStep: st.filter((u) => u.length === 1).length / K,
      });
    }
    if (other && other !== pol) await releasePolicy(other);
    const row: Record<string, unknown> = { policy: name };
    for (const g of [0, 3, 4]) {
      const rs = perQp.filter((u) => g === 0 || u.operands === g);
      if (rs.length === 0) continue;
      const m = (f: (u: (typeof rs)[number]) => number) => rs.reduce((acc, u) => acc + f(u), 0) / rs.length;
      row[g === 0 ? 'all' : `${g} op`] = {
        n: rs.length,
        L: m((u) => u.L),
        kl: m((u) => u.kl),
        logR: m((u) => u.logR),
        entropy: m((u) => u.entropy),
        correct: m((u) => u.correct),
        final: m((u) => u.final),
        oneStep: m((u) => u.oneStep),
        Lvariants: variants.map((_, vi) => m((u) => u.Lv[vi])),
      };
    }
    policyRows.push(row);
  }
  await releasePolicy(pol);
  for (const r of perQ) {
    delete r.x;
    delete r.y;
  }
  if (flags.out) writeFileSync(flags.out, perQ.map((r) => JSON.stringify(r)).join('\n') + '\n');
  // averages over questions (each question counts once), overall and by number of operands
  const groups = new Map<string, Record<string, unknown>[]>([['all', perQ]]);
  for (const r of [...perQ].sort((p, q) => (p.operands as number) - (q.operands as number))) {
    const k = `${r.operands} op`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  const mean = (xs: number[]) => xs.reduce((s, u) => s + u, 0) / xs.length;
  const table = variants.map((v, vi) => {
    const row: Record<string, unknown> = { a: v.a, T: v.T, w: v.w, prior: v.prior };
    for (const [g, rs] of groups) {
      const vs = rs.map(
        (r) =>
          (
            r.variants as {
              aboveCorrect: number;
              correct: number;
              correctUpper: number;
              final: number;
              oneStep: number;
              ess: number;
              sampledShare: number;
            }[]
          )[vi],
      );
      row[g] = {
        n: rs.length,
        correct: mean(vs.map((u) => u.correct)),
        correctUpper: mean(vs.map((u) => u.correctUpper)),
        correctBeaten: vs.filter((u) => u.aboveCorrect > 0).length,
        final: mean(vs.map((u) => u.final)),
        oneStep: mean(vs.map((u) => u.oneStep)),
        sampledShare: mean(vs.map((u) => u.sampledShare)),
        essMean: mean(vs.map((u) => u.ess)),
        essMin: Math.min(...vs.map((u) => u.ess)),
        essUnder5: vs.filter((u) => u.ess < 5).length,
      };
    }
    return row;
  });
  const summary = {
    run: flags.run,
    data: flags.data,
    offset: Number(flags.offset),
    questions: perQ.length,
    samples: M,
    runShare: beta,
    seed: Number(flags.seed),
    proposalCorrect: Object.fromEntries(
      [...groups].map(([g, rs]) => [
        g,
        { run: mean(rs.map((r) => r.runCorrect as number)), base: mean(rs.map((r) => r.baseCorrect as number)) },
      ]),
    ),
    table,
    policies: policyRows,
    seconds: (performance.now() - t0) / 1000,
  };
  if (flags.json) {
    process.stdout.write(JSON.stringify(summary) + '\n');
    return;
  }
  const pct = (u: number) => (100 * u).toFixed(1).padStart(5);
  console.log(
    `${perQ.length} questions of ${flags.data} from ${flags.offset}; ${M} samples each (${mRun} from ${flags.run}, ${mBase} from the base model); seed ${flags.seed}`,
  );
  for (const [g, p] of Object.entries(summary.proposalCorrect))
    console.log(`correct chains among the proposals' own samples (${g}): run ${pct(p.run)} %, base ${pct(p.base)} %`);
  console.log(
    'prior    a     T    w  group    n  correct %  (bound %)  beaten  final-correct %  one-step %  sampled share %  ESS mean  ESS min  ESS<5',
  );
  for (const row of table)
    for (const g of groups.keys()) {
      const c = row[g] as {
        n: number;
        correct: number;
        correctUpper: number;
        correctBeaten: number;
        final: number;
        oneStep: number;
        sampledShare: number;
        essMean: number;
        essMin: number;
        essUnder5: number;
      };
      console.log(
        `${String(row.prior).padEnd(5)} ${String(row.a).padStart(4)}  ${String(row.T).padStart(4)} ${String(row.w).padStart(4)}  ${g.padEnd(5)} ${String(c.n).padStart(4)}      ${pct(c.correct)}    ${pct(c.correctUpper)}  ${String(c.correctBeaten).padStart(6)}            ${pct(c.final)}       ${pct(c.oneStep)}            ${pct(c.sampledShare)}    ${c.essMean.toFixed(1).padStart(6)}   ${c.essMin.toFixed(1).padStart(6)}   ${c.essUnder5}`,
      );
    }
  if (policyRows.length > 0) {
    console.log('\npolicies against the target (reward as configured), their own samples:');
    console.log(
      'policy                                                   group   L=E[log q - log R]  KL>=~  mean log R  entropy  correct %  final-correct %  one-step %',
    );
    for (const row of policyRows)
      for (const [g, v] of Object.entries(row)) {
        if (g === 'policy') continue;
        const c = v as { L: number; kl: number; logR: number; entropy: number; correct: number; final: number; oneStep: number };
        console.log(
          `${String(row.policy).slice(-56).padEnd(56)} ${g.padEnd(5)}  ${c.L.toFixed(2).padStart(10)}  ${c.kl.toFixed(2).padStart(12)}  ${c.logR.toFixed(2).padStart(9)}  ${c.entropy.toFixed(2).padStart(7)}      ${pct(c.correct)}            ${pct(c.final)}       ${pct(c.oneStep)}`,
        );
      }
    console.log('\nE_q[log q - log R] per variant (all questions; lower = closer to that target, comparable down a column):');
    console.log('policy'.padEnd(56) + variants.map((v) => `${v.prior}:${v.a}:${v.T}:${v.w}`.padStart(14)).join(''));
    for (const row of policyRows) {
      const c = row.all as { Lvariants: number[] };
      console.log(String(row.policy).slice(-56).padEnd(56) + c.Lvariants.map((u) => u.toFixed(2).padStart(14)).join(''));
    }
  }
}

main().catch((err) => {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`arith-posterior-mass: ${err.message.split('\n')[0]}\n`);
  process.exit(2);
});
