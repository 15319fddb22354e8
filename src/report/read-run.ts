import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

export type Row = Record<string, unknown>;

/** A table read from comparison.json / comparison.csv, or built from sub-runs. */
export interface Table {
  title?: string;
  columns: string[];
  rows: Row[];
}

/** Everything a report can show about one run folder; every part is optional. */
export interface RunData {
  dir: string;
  /** Short label: the objective/algorithm when the summary names one, else the folder name. */
  label: string;
  configText?: string;
  summary?: Row;
  metrics: Row[];
  samples: Row[];
  comparison?: Table;
  /** compare runs: majority-vote accuracy by number of operands, and the paired tests (comparison.json) */
  accuracyByOperands?: Row[];
  paired?: Row[];
  /** Immediate sub-folders that are runs themselves (e.g. one per objective of a benchmark). */
  subRuns: RunData[];
  /** Problems met while reading (unparsable lines, unreadable files): shown, never thrown. */
  warnings: string[];
}

/**
 * Reads a run folder leniently: a missing file leaves its part empty and a malformed file or
 * line becomes a warning, because a report is most wanted exactly when a run went wrong
 * (diverged, was killed mid-write) and must still be produced.
 */
export function readRun(dir: string, opts: { subRuns?: boolean } = {}): RunData {
  const warnings: string[] = [];
  const configText = readText(join(dir, 'config.yaml'), warnings);
  const summaryRaw = readJson(join(dir, 'summary.json'), warnings);
  const summary = isRecord(summaryRaw) ? summaryRaw : undefined;
  if (summaryRaw !== undefined && !summary) warnings.push('summary.json is not a JSON object; ignored');
  const metrics = readJsonLines(join(dir, 'metrics.jsonl'), warnings);
  const samples = readJsonLines(join(dir, 'samples.jsonl'), warnings);
  const comparison = readComparison(dir, warnings);
  const cmpJson = comparison ? readJson(join(dir, 'comparison.json'), []) : undefined;
  const rowsAt = (k: string) => (isRecord(cmpJson) && Array.isArray(cmpJson[k]) ? (cmpJson[k] as unknown[]).filter(isRecord) : undefined);
  const accuracyByOperands = rowsAt('accuracyByOperands');
  const paired = rowsAt('paired');
  const subRuns = opts.subRuns === false ? [] : listSubRuns(dir).map((d) => readRun(d, { subRuns: false }));
  const algo = summary?.algo ?? summary?.objective;
  const label = typeof algo === 'string' && algo ? algo : basename(dir);
  return {
    dir,
    label,
    configText,
    summary,
    metrics,
    samples,
    comparison,
    ...(accuracyByOperands?.length ? { accuracyByOperands } : {}),
    ...(paired?.length ? { paired } : {}),
    subRuns,
    warnings,
  };
}

/** Sub-folders holding a metrics.jsonl, sorted by name so the order is stable across machines. */
function listSubRuns(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => {
      try {
        return statSync(p).isDirectory() && existsSync(join(p, 'metrics.jsonl'));
      } catch {
        return false;
      }
    });
}

function readText(file: string, warnings: string[]): string | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    warnings.push(`cannot read ${basename(file)}: ${(err as Error).message}`);
    return undefined;
  }
}

function readJson(file: string, warnings: string[]): unknown {
  const text = readText(file, warnings);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    warnings.push(`${basename(file)} is not valid JSON (${(err as Error).message}); ignored`);
    return undefined;
  }
}

/** One object per line; a torn last line (a run killed mid-append) is skipped with a warning. */
function readJsonLines(file: string, warnings: string[]): Row[] {
  const text = readText(file, warnings);
  if (text === undefined) return [];
  const rows: Row[] = [];
  let bad = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const v = JSON.parse(line);
      if (isRecord(v)) rows.push(v);
      else bad++;
    } catch {
      bad++;
    }
  }
  if (bad > 0) warnings.push(`${basename(file)}: ${bad} line(s) that are not JSON objects were skipped`);
  return rows;
}

/**
 * comparison.json may be an array of row objects, an object with `rows` (and optionally
 * `columns`, `title`), or an object mapping row names to row objects; comparison.csv is a
 * header line plus rows (RFC 4180 quoting).
 */
function readComparison(dir: string, warnings: string[]): Table | undefined {
  const json = readJson(join(dir, 'comparison.json'), warnings);
  if (json !== undefined) {
    const t = tableFromJson(json);
    if (t) return t;
    warnings.push('comparison.json has no table shape (array of objects, {rows}, or {name: object}); ignored');
  }
  const csv = readText(join(dir, 'comparison.csv'), warnings);
  if (csv !== undefined) {
    const t = tableFromCsv(csv);
    if (t) return t;
    warnings.push('comparison.csv has no rows; ignored');
  }
  return undefined;
}

export function tableFromJson(v: unknown): Table | undefined {
  if (Array.isArray(v)) {
    const rows = v.filter(isRecord);
    return rows.length ? { columns: unionKeys(rows), rows } : undefined;
  }
  if (!isRecord(v)) return undefined;
  if (Array.isArray(v.rows)) {
    const rows = v.rows.filter(isRecord);
    if (!rows.length) return undefined;
    const columns = Array.isArray(v.columns) && v.columns.every((c) => typeof c === 'string') ? (v.columns as string[]) : unionKeys(rows);
    return { title: typeof v.title === 'string' ? v.title : undefined, columns, rows };
  }
  const entries = Object.entries(v).filter(([, r]) => isRecord(r)) as [string, Row][];
  if (!entries.length) return undefined;
  const rows = entries.map(([name, r]) => ({ name, ...r }));
  return { columns: unionKeys(rows), rows };
}

export function tableFromCsv(text: string): Table | undefined {
  const records = parseCsv(text).filter((r) => r.some((c) => c.trim() !== ''));
  if (records.length < 2) return undefined;
  const columns = records[0];
  const rows = records.slice(1).map((r) => Object.fromEntries(columns.map((c, i) => [c, r[i] ?? ''])));
  return { columns, rows };
}

function parseCsv(text: string): string[][] {
  const out: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      out.push(row);
      row = [];
      cell = '';
    } else cell += ch;
  }
  if (cell !== '' || row.length) {
    row.push(cell);
    out.push(row);
  }
  return out;
}

export function unionKeys(rows: Row[]): string[] {
  const keys = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) keys.add(k);
  return [...keys];
}

export function isRecord(v: unknown): v is Row {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A finite number, or undefined: metrics use null for "not defined" (e.g. MH has no log Z). */
export function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
