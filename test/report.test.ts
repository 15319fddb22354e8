import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { buildReport, writeReport } from '../src/report/index.js';
import { prefixIds } from '../src/report/render.js';
import { tableFromCsv } from '../src/report/read-run.js';
import { writeTempModel } from '../src/lmbuild/fixtures.js';

const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'ft-report-'));
after(() => rmSync(work, { recursive: true, force: true }));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

/**
 * Debian's chromium for the browser test: FLOWTUNE_CHROMIUM, else /usr/bin/chromium. On a
 * fresh machine of the CI kind (root or password-less sudo, Debian packages reachable) the
 * test installs it with apt-get, so the README's `npm test` passes on its own; anywhere
 * else the failure says what to install.
 */
function chromiumPath(): string {
  const given = process.env.FLOWTUNE_CHROMIUM;
  if (given) {
    assert.ok(existsSync(given), `FLOWTUNE_CHROMIUM=${given}: no such file`);
    return given;
  }
  const found = () => ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
  const have = found();
  if (have) return have;
  const how = "install Debian's chromium (apt-get install -y chromium) or set FLOWTUNE_CHROMIUM to a Chromium binary";
  assert.ok(existsSync('/usr/bin/apt-get'), `headless Chromium not found and this is not a Debian system: ${how}`);
  const sudo = process.getuid?.() === 0 ? [] : spawnSync('sudo', ['-n', 'true']).status === 0 ? ['sudo', '-n'] : null;
  assert.ok(sudo, `headless Chromium not found, and installing it needs root (or password-less sudo): ${how}`);
  const apt = (...args: string[]) => {
    const [cmd, ...rest] = [...sudo, 'apt-get', '-o', 'DPkg::Lock::Timeout=300', ...args];
    return spawnSync(cmd, rest, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 << 20 });
  };
  process.stderr.write("report test: installing Debian's chromium for the browser check (apt-get install -y chromium)\n");
  let r = apt('install', '-y', 'chromium');
  if (r.status !== 0) {
    // a fresh machine has no package lists yet
    apt('update');
    r = apt('install', '-y', 'chromium');
  }
  const now = found();
  assert.ok(
    now,
    `apt-get install -y chromium failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}; ${how}`,
  );
  return now;
}

const hg = join(work, 'hg');
before(() => {
  // a real benchmark run at tiny size: 2-D H = 5 grid, 60 iterations, metrics every 10
  const r = run(
    'bench',
    'hypergrid',
    '--algo',
    'tb',
    '--ndim',
    '2',
    '--height',
    '5',
    '--iterations',
    '60',
    '--eval-every',
    '10',
    '--out',
    hg,
  );
  assert.equal(r.status, 0, r.stderr);
});

/** The <svg>…</svg> blocks of a page, in order. */
const svgs = (html: string) => [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((m) => m[0]);

test('bench --out writes report.html with one plotted SVG per chart and nothing fetched from the network', () => {
  const file = join(hg, 'report.html');
  assert.ok(existsSync(file), 'the benchmark wrote report.html next to its metrics');
  const html = readFileSync(file, 'utf8');
  const figures = [...html.matchAll(/<figure class="chart[^"]*" data-chart="([^"]+)"/g)].map((m) => m[1]);
  // hypergrid logs loss, learned log Z (exact log Z in the summary), exact TV, empirical L1 and timing
  assert.deepEqual(figures, ['loss', 'logz', 'tv', 'l1', 'throughput']);
  const charts = svgs(html);
  assert.equal(charts.length, figures.length, 'one <svg> per chart');
  for (const [i, svg] of charts.entries()) {
    // vega draws a line mark as one <path> with a non-empty d inside g.mark-line, points as g.mark-symbol
    const lines = [...svg.matchAll(/<g class="mark-line role-mark[^"]*"[^>]*>([\s\S]*?)<\/g>/g)];
    assert.ok(lines.length > 0, `${figures[i]}: a line mark`);
    assert.ok(
      lines.every((g) => /<path[^>]* d="M[^"]+"/.test(g[1])),
      `${figures[i]}: the line has a drawn path`,
    );
    assert.match(svg, /<g class="mark-symbol role-mark/, `${figures[i]}: point symbols`);
  }
  // the exact log Z from the oracle is drawn next to the learned one
  assert.match(charts[1], /exact log Z/);
  assert.match(charts[1], /learned log Z/);
  for (const m of html.matchAll(/\s(?:src|href|xlink:href)\s*=\s*"([^"]*)"/gi))
    assert.doesNotMatch(m[1], /^\s*(https?:)?\/\//i, `external reference ${m[1]}`);
  assert.doesNotMatch(html, /<script|<link\b|@import|url\(\s*['"]?https?:/i, 'no scripts, stylesheets or remote resources');
  // inline SVGs share one id namespace: vega's per-view clip ids must have been made unique
  const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(new Set(ids).size, ids.length, 'element ids are unique across charts');
  for (const m of html.matchAll(/url\(#([^)]+)\)/g)) assert.ok(ids.includes(m[1]), `url(#${m[1]}) resolves`);
});

test('flowtune report picks up samples.jsonl and comparison.csv, and survives torn and broken files', () => {
  writeFileSync(join(hg, 'samples.jsonl'), ['{"x":"[1, 3]","logR":0.5}', '{"x":"[4, 4]","logR":1.25,"note":"<b>&"}', ''].join('\n'));
  writeFileSync(join(hg, 'comparison.csv'), 'method,accuracy\ntb,0.5\n"sub, tb",0.75\n');
  appendFileSync(join(hg, 'metrics.jsonl'), '{"iteration": 70, "trajec'); // a run killed mid-append
  const out = join(work, 'custom.html');
  const r = run('report', '--run', hg, '--out', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout.trim().split('\n').pop() as string);
  assert.equal(info.file, out);
  assert.deepEqual(info.sections, ['warnings', 'summary', 'curves', 'comparison', 'samples']);
  assert.match(r.stderr, /metrics\.jsonl: 1 line/);
  const html = readFileSync(out, 'utf8');
  assert.equal(svgs(html).length, 5, 'the torn line does not cost a chart');
  const samples = html.slice(html.indexOf('id="samples"'));
  assert.equal((samples.match(/<tr>/g) ?? []).length, 3, 'header + two sample rows');
  assert.match(samples, /&lt;b&gt;&amp;/, 'sample text is escaped');
  const cmp = html.slice(html.indexOf('id="comparison"'), html.indexOf('id="samples"'));
  assert.match(cmp, /<td>sub, tb<\/td><td>0\.75<\/td>/, 'quoted CSV cell kept whole');
  assert.deepEqual(tableFromCsv('a,b\r\n"x ""y""",2\r\n')?.rows, [{ a: 'x "y"', b: '2' }]);

  // an empty folder and one with garbage files still give a page, with no charts
  const empty = join(work, 'empty');
  mkdirSync(empty);
  writeFileSync(join(empty, 'summary.json'), '{not json');
  writeFileSync(join(empty, 'comparison.json'), '42');
  const e = run('report', '--run', empty, '--json');
  assert.equal(e.status, 0, e.stderr);
  const eh = readFileSync(join(empty, 'report.html'), 'utf8');
  assert.equal(svgs(eh).length, 0);
  assert.match(eh, /summary\.json is not valid JSON/);
  assert.match(eh, /holds no run data/);
  const missing = run('report', '--run', join(work, 'nope'));
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /no such folder/);
});

test('a folder of runs gets the comparison figure and the equal-cost table; bench survives a failing report', async () => {
  const fam = join(work, 'fam');
  const mh = run(
    'bench',
    'hypergrid',
    '--algo',
    'mh',
    '--ndim',
    '2',
    '--height',
    '5',
    '--iterations',
    '60',
    '--eval-every',
    '10',
    '--out',
    join(fam, 'mh'),
  );
  assert.equal(mh.status, 0, mh.stderr);
  // copy the tb run in as a sibling
  mkdirSync(join(fam, 'tb'));
  for (const f of ['metrics.jsonl', 'summary.json']) writeFileSync(join(fam, 'tb', f), readFileSync(join(hg, f)));
  const rep = await writeReport(fam);
  assert.deepEqual(rep.charts, ['hypergrid']);
  assert.ok(rep.sections.includes('runs-comparison'));
  const svg = svgs(rep.html)[0];
  assert.match(svg, /tb/);
  assert.match(svg, /mh/);
  // vega groups a coloured line per series: 2 panels (exact TV, empirical L1) × 2 runs
  assert.equal((svg.match(/<g class="mark-line role-mark/g) ?? []).length, 4);
  // MH spends fewer evaluations than 60 × 16; the table compares both at MH's total
  const mhEvals = JSON.parse(readFileSync(join(fam, 'mh', 'summary.json'), 'utf8')).rewardEvaluations as number;
  assert.ok(mhEvals < 960);
  assert.match(rep.html, new RegExp(`reward evaluations ≤ ${mhEvals}`));

  // report.html blocked by a folder: the run still succeeds, with a warning
  const blocked = join(work, 'blocked');
  mkdirSync(join(blocked, 'report.html'), { recursive: true });
  const b = run(
    'bench',
    'hypergrid',
    '--algo',
    'db',
    '--ndim',
    '2',
    '--height',
    '4',
    '--iterations',
    '5',
    '--eval-every',
    '5',
    '--out',
    blocked,
  );
  assert.equal(b.status, 0, b.stderr);
  assert.match(b.stderr, /warning: could not write .*report\.html/);
  assert.ok(existsSync(join(blocked, 'summary.json')));

  const ids = prefixIds('<svg><clipPath id="clip1"/><g clip-path="url(#clip1)"/><use href="#clip1"/></svg>', 'c3-');
  assert.equal(ids, '<svg><clipPath id="c3-clip1"/><g clip-path="url(#c3-clip1)"/><use href="#c3-clip1"/></svg>');
});

test('flowtune train writes report.html with loss, log Z, mean log-reward and throughput curves', async () => {
  const model = writeTempModel(3, {}, {}, 2);
  try {
    const cfg = join(work, 'lm.yaml');
    writeFileSync(
      cfg,
      YAML.stringify({
        objective: 'tb',
        seed: 0,
        model: model.dir,
        task: { kind: 'pairs', pairs: [{ x: 'The cat', y: ' sat.' }] },
        z: { maxLength: 3, allowed: ['a', 'b'] },
        reward: { prior: 'allowed', likelihoodWeight: 4 },
        train: { steps: 12, batchSize: 4, logEvery: 2, checkpointEvery: 12 },
      }),
    );
    const dir = join(work, 'lm');
    const r = run('train', '--config', cfg, '--out', dir);
    assert.equal(r.status, 0, r.stderr);
    const rep = await buildReport(dir);
    for (const c of ['loss', 'logz', 'logr', 'gradnorm', 'throughput']) assert.ok(rep.charts.includes(c), `${c} in ${rep.charts}`);
    assert.ok(rep.sections.includes('config'));
    assert.equal(svgs(readFileSync(join(dir, 'report.html'), 'utf8')).length, rep.charts.length);
  } finally {
    model.cleanup();
  }
});

test('a folder mixing train and bench runs draws each kind or says what it skipped; report --out never overwrites a foreign file', async () => {
  const mixed = join(work, 'mixed');
  mkdirSync(mixed);
  for (const name of ['tb', 'db']) {
    const r = run(
      'bench',
      'hypergrid',
      '--algo',
      name,
      '--ndim',
      '2',
      '--height',
      '4',
      '--iterations',
      '20',
      '--eval-every',
      '10',
      '--out',
      join(mixed, name),
    );
    assert.equal(r.status, 0, r.stderr);
  }
  // two training runs, as `flowtune train` logs them (metrics by step)
  for (const [name, loss] of [
    ['train-a', 2],
    ['train-b', 3],
  ] as const) {
    mkdirSync(join(mixed, name));
    writeFileSync(
      join(mixed, name, 'metrics.jsonl'),
      [1, 2, 3].map((step) => JSON.stringify({ step, loss: loss / step, meanLogR: -step, logZ: step })).join('\n') + '\n',
    );
    writeFileSync(join(mixed, name, 'summary.json'), JSON.stringify({ objective: name === 'train-a' ? 'tb' : 'subtb', steps: 3 }));
  }
  // and one whose metrics have no x axis at all
  mkdirSync(join(mixed, 'odd'));
  writeFileSync(join(mixed, 'odd', 'metrics.jsonl'), '{"value": 1}\n');
  const rep = await buildReport(mixed);
  assert.deepEqual(rep.charts, ['hypergrid', 'runs-step'], 'one comparison figure per kind');
  assert.ok(rep.sections.includes('runs-comparison'));
  assert.ok(
    rep.warnings.some((w) => /no comparison figure for odd: .*no x axis/.test(w)),
    rep.warnings.join('; '),
  );
  assert.doesNotMatch(rep.html, /holds no run data/);
  const stepSvg = svgs(rep.html)[1];
  assert.equal((stepSvg.match(/<g class="mark-line role-mark/g) ?? []).length, 3 * 2, '3 panels (mean log R, log Z, loss) × 2 runs');

  // --out onto a file report did not write (a run's metrics) is refused, the file untouched
  const metricsFile = join(mixed, 'tb', 'metrics.jsonl');
  const before = readFileSync(metricsFile, 'utf8');
  const r = run('report', '--run', mixed, '--out', metricsFile);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /metrics\.jsonl exists and is not a report flowtune wrote/);
  assert.equal(readFileSync(metricsFile, 'utf8'), before);
  // its own earlier page is replaced
  const page = join(work, 'mixed.html');
  assert.equal(run('report', '--run', mixed, '--out', page).status, 0);
  assert.equal(run('report', '--run', mixed, '--out', page).status, 0);
});

test('headless Chromium renders every chart of report.html offline', async () => {
  const executablePath = chromiumPath();
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('request', (q) => requests.push(q.url()));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    const url = pathToFileURL(join(hg, 'report.html')).href;
    await page.goto(url, { waitUntil: 'load' });
    const charts = await page.$$eval('figure.chart', (figs) =>
      figs.map((f) => {
        const svg = f.querySelector('svg');
        const box = svg?.getBoundingClientRect();
        // drawn marks: line paths and point symbols with a non-empty geometric extent
        const marks = [...(svg?.querySelectorAll('g.mark-line path, g.mark-symbol path') ?? [])].filter((p) => {
          const b = (p as SVGGraphicsElement).getBBox();
          return b.width > 0 || b.height > 0;
        });
        return { id: f.getAttribute('data-chart'), w: box?.width ?? 0, h: box?.height ?? 0, marks: marks.length };
      }),
    );
    assert.equal(charts.length, 5);
    for (const c of charts) {
      assert.ok(c.w > 100 && c.h > 100, `${c.id}: rendered at ${c.w}×${c.h}`);
      assert.ok(c.marks >= 2, `${c.id}: ${c.marks} visible marks`);
    }
    assert.deepEqual(requests, [url], 'the page loads nothing but itself');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
