import { isRecord, unionKeys, type Row, type Table } from './read-run.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** Numbers as a reader wants them in a table: integers whole, tiny values in e-notation. */
export function formatValue(v: unknown): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
    if (a >= 1000) return v.toFixed(1);
    return String(Number(v.toPrecision(4)));
  }
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v) && v.every((e) => typeof e !== 'object' || e === null)) return v.map(formatValue).join(', ');
  return JSON.stringify(v);
}

/** At most this many rows per table: a samples file can hold thousands of lines. */
export const MAX_ROWS = 500;

export function tableHtml(t: Table, opts: { caption?: string; cls?: string } = {}): string {
  const columns = t.columns.length ? t.columns : unionKeys(t.rows);
  const rows = t.rows.slice(0, MAX_ROWS);
  const head = `<tr>${columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr>`;
  const body = rows
    .map(
      (r) =>
        `<tr>${columns.map((c) => `<td${typeof r[c] === 'number' ? ' class="num"' : ''}>${escapeHtml(formatValue(r[c]))}</td>`).join('')}</tr>`,
    )
    .join('\n');
  const more = t.rows.length > rows.length ? `<p class="note">showing the first ${rows.length} of ${t.rows.length} rows</p>` : '';
  const caption = opts.caption ?? t.title;
  return `<div class="table-wrap"><table class="${opts.cls ?? 'data'}">${caption ? `<caption>${escapeHtml(caption)}</caption>` : ''}<thead>${head}</thead><tbody>\n${body}\n</tbody></table></div>${more}`;
}

/** summary.json as key/value rows: scalars and short lists; nested tables are shown apart. */
export function summaryTable(summary: Row): Table | undefined {
  const rows: Row[] = [];
  for (const [k, v] of Object.entries(summary)) {
    if (Array.isArray(v) && v.some(isRecord)) continue;
    if (isRecord(v)) continue;
    rows.push({ key: k, value: v });
  }
  return rows.length ? { columns: ['key', 'value'], rows } : undefined;
}

export interface ChartHtml {
  id: string;
  title: string;
  svg: string;
}

export interface PageParts {
  title: string;
  subtitle: string;
  warnings: string[];
  summary?: Table;
  charts: ChartHtml[];
  runComparisonCharts: ChartHtml[];
  runComparisonTables: Table[];
  comparison?: Table;
  /** compare runs: the accuracy-vs-operands figure and the paired tests */
  comparisonCharts?: ChartHtml[];
  pairedTable?: Table;
  samples?: { title: string; table: Table };
  extraTables: { title: string; table: Table }[];
  configText?: string;
}

const CSS = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; padding: 16px 24px 48px; max-width: 1400px; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 22px; margin: 8px 0 2px; }
h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #555; margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 14px; }
figure.chart { margin: 0; background: #fff; border: 1px solid #e2e2e2; border-radius: 6px; padding: 6px; overflow-x: auto; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
figure.wide { flex-basis: 100%; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; background: #fff; font-size: 13px; margin-bottom: 12px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #e0e0e0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.data td { max-width: 60ch; overflow-wrap: anywhere; }
pre { background: #fff; border: 1px solid #e2e2e2; padding: 10px; overflow-x: auto; font-size: 12px; }
.warn { background: #fff6e0; border: 1px solid #f0d080; padding: 6px 10px; border-radius: 4px; }
.note { color: #666; font-size: 12px; }
`;

/**
 * One self-contained page: inline CSS and inline SVG, and a Content-Security-Policy that
 * forbids every fetch, so a browser opening the file offline shows exactly what it would
 * show online (and a stray external reference fails loudly in the test instead of silently
 * depending on the network).
 */
export function pageHtml(p: PageParts): string {
  const parts: string[] = [];
  parts.push(`<header><h1>${escapeHtml(p.title)}</h1><p class="meta">${escapeHtml(p.subtitle)}</p></header>`);
  if (p.warnings.length)
    parts.push(
      `<div class="warn" id="warnings"><strong>While reading the run:</strong><ul>${p.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul></div>`,
    );
  const before = parts.length;
  if (p.summary) parts.push(`<section id="summary"><h2>Summary</h2>${tableHtml(p.summary, { cls: 'kv' })}</section>`);
  const figures = (cs: ChartHtml[], wide: boolean) =>
    `<div class="charts">${cs.map((c) => `<figure class="chart${wide ? ' wide' : ''}" data-chart="${escapeHtml(c.id)}" aria-label="${escapeHtml(c.title)}">${c.svg}</figure>`).join('\n')}</div>`;
  if (p.charts.length) parts.push(`<section id="curves"><h2>Curves</h2>${figures(p.charts, false)}</section>`);
  if (p.runComparisonCharts.length || p.runComparisonTables.length) {
    parts.push(
      `<section id="runs-comparison"><h2>Runs in this folder</h2>${figures(p.runComparisonCharts, true)}${p.runComparisonTables.map((t) => tableHtml(t)).join('')}</section>`,
    );
  }
  if (p.comparison)
    parts.push(
      `<section id="comparison"><h2>Comparison</h2>${tableHtml(p.comparison)}${p.pairedTable ? tableHtml(p.pairedTable) : ''}${p.comparisonCharts?.length ? figures(p.comparisonCharts, false) : ''}</section>`,
    );
  if (p.samples) parts.push(`<section id="samples"><h2>${escapeHtml(p.samples.title)}</h2>${tableHtml(p.samples.table)}</section>`);
  for (const t of p.extraTables) parts.push(`<section class="extra"><h2>${escapeHtml(t.title)}</h2>${tableHtml(t.table)}</section>`);
  if (p.configText)
    parts.push(
      `<section id="config"><h2>Configuration</h2><details open><summary>config.yaml</summary><pre>${escapeHtml(p.configText)}</pre></details></section>`,
    );
  if (parts.length === before)
    parts.push('<p class="note">This folder holds no run data (no metrics.jsonl, summary.json, samples or comparison).</p>');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(p.title)}</title>
<style>${CSS}</style>
</head>
<body>
${parts.join('\n')}
</body>
</html>
`;
}
