/**
 * The reproduction plan of Tiapkin et al. (2024)'s three benchmark figures: which runs (family ×
 * setting × seed) with which CLI arguments, at the paper's budgets scaled by --budget.
 * scripts/reproduce.ts runs the plan as parallel processes and writes the figures.
 */
import { UsageError, usage } from '../core/errors.js';

export const FAMILIES = ['hypergrid', 'bitseq', 'molecules'] as const;
export type Family = (typeof FAMILIES)[number];

/**
 * The paper's budgets: hypergrid 10⁶ trajectories of 16 per iteration (62,500 iterations);
 * bit sequences 50,000 iterations of 16; molecules 50,000 iterations of 4 trajectories
 * (mols/configs/algorithm/soft_dqn.yaml: num_iterations 50_000, mbsize 4).
 */
export const PAPER_ITERATIONS: Record<Family, number> = { hypergrid: 62_500, bitseq: 50_000, molecules: 50_000 };
export const PAPER_BATCH: Record<Family, number> = { hypergrid: 16, bitseq: 16, molecules: 4 };

export interface ReproduceConfig {
  families: Family[];
  /** Fraction of the paper's iterations, per family. */
  budget: Record<Family, number>;
  /** Points per curve (evaluations during training). */
  points: number;
  algos: string[];
  ks: number[];
  betas: number[];
  rewards: string[];
  /** Evaluation sizes (the paper's by default; smaller for a reduced run). */
  bitseqTestModes: number;
  molTestSize: number;
  orders: number;
}

export interface ReproduceArgs {
  config: ReproduceConfig;
  seeds: number[];
  jobs: number;
  out: string;
  docs: boolean;
  /** Add this invocation's settings to the folder's configuration instead of refusing a different one. */
  extend: boolean;
}

export interface PlannedRun {
  family: Family;
  /** e.g. hypergrid/standard/tb-learned, bitseq/k8/mdqn, molecules/b10/tb */
  setting: string;
  seed: number;
  id: string;
  args: string[];
}

const ALL_ALGOS = ['tb', 'db', 'subtb', 'mdqn'];

function list(name: string, v: string | undefined, def: string[]): string[] {
  if (v === undefined) return def;
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  usage(items.length > 0, `--${name} must be a comma-separated list`);
  return items;
}

function ints(name: string, v: string | undefined, def: number[], ok: (n: number) => boolean, what: string): number[] {
  const items = list(name, v, def.map(String));
  return items.map((s) => {
    const n = Number(s);
    usage(/^-?\d+$/.test(s) && ok(n), `--${name}: ${s} is not ${what}`);
    return n;
  });
}

/** Parses `--family F --seeds 0,1,2 --jobs 2 --budget B [--out DIR] [filters]`; bad input → UsageError. */
export function parseReproduceArgs(argv: string[]): ReproduceArgs {
  const known = new Set([
    'points',
    'family',
    'seeds',
    'jobs',
    'budget',
    'out',
    'algos',
    'ks',
    'betas',
    'rewards',
    'bitseq-test-modes',
    'mol-test-size',
    'orders',
    'no-docs',
    'extend',
  ]);
  const a: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const t = argv[i];
    usage(t.startsWith('--'), `unexpected argument ${t}`);
    const key = t.slice(2);
    usage(known.has(key), `unknown option --${key}`);
    if (key === 'no-docs' || key === 'extend') {
      a[key] = 'true';
      continue;
    }
    usage(i + 1 < argv.length && !argv[i + 1].startsWith('--'), `--${key} needs a value`);
    a[key] = argv[++i];
  }
  usage(a.family !== undefined, '--family is required: hypergrid|bitseq|molecules|all');
  const families: Family[] =
    a.family === 'all'
      ? [...FAMILIES]
      : list('family', a.family, []).map((f) => {
          if (!(FAMILIES as readonly string[]).includes(f)) throw new UsageError(`unknown family ${f} (hypergrid|bitseq|molecules|all)`);
          return f as Family;
        });
  const budget = parseBudget(a.budget);
  const algos = list('algos', a.algos, ALL_ALGOS);
  for (const x of algos) usage(ALL_ALGOS.includes(x), `unknown algo ${x} (${ALL_ALGOS.join('|')})`);
  const rewards = list('rewards', a.rewards, ['standard', 'hard']);
  for (const r of rewards) usage(r === 'standard' || r === 'hard', `unknown hypergrid reward ${r} (standard|hard)`);
  const seeds = ints('seeds', a.seeds, [0, 1, 2], (n) => n >= 0 && Number.isSafeInteger(n), 'a seed (an integer ≥ 0)');
  usage(new Set(seeds).size === seeds.length, '--seeds must not repeat a seed');
  return {
    config: {
      families,
      budget,
      algos,
      ks: ints('ks', a.ks, [2, 4, 6, 8, 10], (n) => n >= 1 && 120 % n === 0 && n <= 12, 'a word length dividing 120'),
      betas: ints('betas', a.betas, [4, 8, 10, 16], (n) => n >= 1, 'a positive integer β'),
      rewards,
      bitseqTestModes: ints('bitseq-test-modes', a['bitseq-test-modes'], [60], (n) => n >= 1 && n <= 60, 'in 1..60')[0],
      molTestSize: ints('mol-test-size', a['mol-test-size'], [950], (n) => n >= 2 && n <= 950, 'in 2..950')[0],
      orders: ints('orders', a.orders, [10], (n) => n >= 1, 'a positive integer')[0],
      points: ints('points', a.points, [20], (n) => n >= 1 && n <= 1000, 'a point count in 1..1000')[0],
    },
    seeds,
    jobs: ints('jobs', a.jobs, [2], (n) => n >= 1 && n <= 64, 'a job count in 1..64')[0],
    out: a.out ?? 'runs/reproduce',
    docs: a['no-docs'] === undefined,
    extend: a.extend !== undefined,
  };
}

/** `--budget B` (every family) or `--budget hypergrid=B1,bitseq=B2,molecules=B3` (others stay 1); each in (0, 1]. */
export function parseBudget(v: string | undefined): Record<Family, number> {
  const out: Record<Family, number> = { hypergrid: 1, bitseq: 1, molecules: 1 };
  if (v === undefined) return out;
  const bad = () => new UsageError(`--budget must be a fraction in (0, 1] of the paper's iterations, or family=fraction pairs (got ${v})`);
  const num = (s: string) => {
    const n = Number(s);
    if (s.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1) throw bad();
    return n;
  };
  if (!v.includes('=')) {
    const n = num(v);
    return { hypergrid: n, bitseq: n, molecules: n };
  }
  for (const part of v.split(',')) {
    const [f, b] = part.split('=');
    if (!(FAMILIES as readonly string[]).includes(f) || b === undefined) throw bad();
    out[f as Family] = num(b);
  }
  return out;
}

export const iterationsFor = (f: Family, budget: Record<Family, number>): number =>
  Math.max(1, Math.round(PAPER_ITERATIONS[f] * budget[f]));

/** Every run of the plan, in a fixed order (family, setting, seed). */
export function planRuns(c: ReproduceConfig, seeds: number[]): PlannedRun[] {
  const runs: PlannedRun[] = [];
  const add = (family: Family, setting: string, args: string[]) => {
    const it = iterationsFor(family, c.budget);
    const evalEvery = Math.max(1, Math.floor(it / c.points));
    for (const seed of seeds)
      runs.push({
        family,
        setting,
        seed,
        id: `${setting}/seed-${seed}`,
        args: [
          'bench',
          family,
          ...args,
          '--iterations',
          String(it),
          '--batch',
          String(PAPER_BATCH[family]),
          '--eval-every',
          String(evalEvery),
          '--seed',
          String(seed),
          '--json',
        ],
      });
  };
  for (const f of c.families) {
    if (f === 'hypergrid')
      for (const r of c.rewards)
        for (const algo of c.algos) {
          const base = ['--algo', algo, '--ndim', '4', '--height', '20', '--reward', r];
          // the paper's two P_B settings: learned for the baselines (M-DQN keeps its uniform P_B) and uniform for all
          if (algo === 'mdqn') add(f, `hypergrid/${r}/mdqn`, base);
          else for (const pb of ['learned', 'uniform']) add(f, `hypergrid/${r}/${algo}-${pb}`, [...base, '--pb', pb]);
        }
    if (f === 'bitseq')
      for (const k of c.ks)
        for (const algo of c.algos)
          add(f, `bitseq/k${k}/${algo}`, [
            '--algo',
            algo,
            '--k',
            String(k),
            '--test-modes',
            String(c.bitseqTestModes),
            '--orders',
            String(c.orders),
          ]);
    if (f === 'molecules')
      for (const b of c.betas)
        for (const algo of c.algos)
          add(f, `molecules/b${b}/${algo}`, [
            '--algo',
            algo,
            '--reward',
            'seh',
            '--beta',
            String(b),
            '--test-size',
            String(c.molTestSize),
            '--orders',
            String(c.orders),
          ]);
  }
  return runs;
}

/** The settings grids of a configuration: what `--extend` may add to; every other field must match. */
const GRIDS = ['families', 'algos', 'ks', 'betas', 'rewards'] as const;

/** Whether `x` (a folder's parsed reproduce.json) has the shape of a ReproduceConfig. */
export function isReproduceConfig(x: unknown): x is ReproduceConfig {
  if (typeof x !== 'object' || x === null) return false;
  const c = x as Record<string, unknown>;
  const numbers = ['points', 'bitseqTestModes', 'molTestSize', 'orders'].every((k) => typeof c[k] === 'number');
  return GRIDS.every((k) => Array.isArray(c[k])) && numbers && typeof c.budget === 'object' && c.budget !== null;
}

/** `a ∪ b` in the order of `order` (names), or ascending (numbers). */
function unionOf<T extends string | number>(a: T[], b: T[], order?: readonly T[]): T[] {
  const u = [...new Set([...a, ...b])];
  return order ? order.filter((x) => u.includes(x)) : u.sort((x, y) => Number(x) - Number(y));
}

/**
 * The folder's configuration with the settings of `next` added (`--extend`): families, algorithms,
 * k, β and hypergrid rewards become the unions, so finished runs are kept and only the new
 * settings run. The budget, points per curve and evaluation sizes must be the folder's (runs of
 * another budget or test set are not comparable): a string saying which differ otherwise.
 */
export function extendConfig(prev: ReproduceConfig, next: ReproduceConfig): ReproduceConfig | string {
  // every field outside the grids (budget, points, evaluation sizes, and any added later) must match
  const differ = (Object.keys(next) as (keyof ReproduceConfig)[]).filter(
    (k) => !(GRIDS as readonly string[]).includes(k) && JSON.stringify(prev[k]) !== JSON.stringify(next[k]),
  );
  if (differ.length > 0)
    return `--extend adds settings only; ${differ.map((k) => `${k} ${JSON.stringify(next[k])} differs from the folder's ${JSON.stringify(prev[k])}`).join(', ')}`;
  return {
    ...prev,
    families: unionOf(prev.families, next.families, FAMILIES),
    algos: unionOf(prev.algos, next.algos, ALL_ALGOS),
    ks: unionOf(prev.ks, next.ks),
    betas: unionOf(prev.betas, next.betas),
    rewards: unionOf(prev.rewards, next.rewards, ['standard', 'hard']),
  };
}

/** The part of the configuration that makes runs comparable (seeds and jobs may differ between resumptions). */
export function configKey(c: ReproduceConfig): string {
  return JSON.stringify({ ...c, families: undefined, version: 1 });
}

const blockRe = (f: Family) => new RegExp(`<!-- reproduce:${f}:begin[\\s\\S]*?<!-- reproduce:${f}:end -->`);

/** A family's generated block for docs/benchmarks.md, between its own markers. */
export function reproduceBlock(f: Family, body: string): string {
  return `<!-- reproduce:${f}:begin (written by scripts/reproduce.ts; do not edit by hand) -->\n\n${body.trim()}\n\n<!-- reproduce:${f}:end -->`;
}

/**
 * docs/benchmarks.md with the blocks of the families just run replaced, each between its own
 * markers, so a run of one family keeps the others' tables; a family without a block yet goes
 * after the last family block (or at the end, under a heading, in a document without any).
 */
export function mergeReproduceBlocks(doc: string, blocks: Partial<Record<Family, string>>): string {
  let out = doc;
  for (const f of FAMILIES) {
    const block = blocks[f];
    if (block === undefined) continue;
    if (blockRe(f).test(out)) {
      out = out.replace(blockRe(f), () => block);
      continue;
    }
    const ends = [...out.matchAll(/<!-- reproduce:[a-z]+:end -->/g)];
    if (ends.length === 0) out = `${out.trimEnd()}\n\n## Reproduction (npm run reproduce)\n\n${block}\n`;
    else {
      const at = ends[ends.length - 1].index! + ends[ends.length - 1][0].length;
      out = `${out.slice(0, at)}\n\n${block}${out.slice(at)}`;
    }
  }
  return out;
}

/** One invocation of the reproduction in OUT/timing.json (rewritten after each finished run). */
export interface Invocation {
  /** ISO start; absent in records written before starts were kept */
  started?: string;
  finished: string;
  wallSeconds: number;
  runs: number;
}

/**
 * Wall time of a reproduction over its invocations: the union of their [started, finished]
 * spans, so that invocations running side by side on the same folder are not counted twice
 * (records without a start add their wallSeconds).
 */
export function totalWallSeconds(invocations: Invocation[]): number {
  const spans = invocations
    .filter((x) => x.started !== undefined)
    .map((x) => [Date.parse(x.started!), Date.parse(x.finished)] as const)
    .sort((a, b) => a[0] - b[0]);
  let total = invocations.filter((x) => x.started === undefined).reduce((s, x) => s + x.wallSeconds, 0);
  let span: [number, number] | null = null;
  for (const [a, b] of spans) {
    if (span && a <= span[1]) span[1] = Math.max(span[1], b);
    else {
      if (span) total += (span[1] - span[0]) / 1000;
      span = [a, b];
    }
  }
  if (span) total += (span[1] - span[0]) / 1000;
  return Math.round(total);
}
