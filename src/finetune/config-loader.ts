import YAML from 'yaml';
import { z } from 'zod';
import { readTextFile } from '../core/io.js';
import { UsageError } from '../core/errors.js';

/**
 * Loads a YAML config, applies `--set a.b=c` overrides, and validates it with a zod schema
 * into a typed object. Every problem becomes one UsageError line that names the key.
 */
export function loadConfig<S extends z.ZodType>(file: string, sets: string[], schema: S): z.infer<S> {
  let text: string;
  try {
    text = readTextFile(file);
  } catch (err) {
    if (err instanceof UsageError) throw err; // strict UTF-8: names the file and line
    throw new UsageError(`cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = YAML.parse(text) ?? {};
  } catch (err) {
    throw new UsageError(`config ${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new UsageError(`config ${file} must be a mapping of keys to values`);
  for (const s of sets) applySet(raw as Record<string, unknown>, s);
  return validate(raw, schema, file);
}

export function validate<S extends z.ZodType>(raw: unknown, schema: S, where: string): z.infer<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new UsageError(`${where}: ${describeIssue(issue)}`);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (key ? `${key}.${k}` : k));
    return `unknown key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}`;
  }
  if (issue.code === 'invalid_type') {
    const expected = issue.expected;
    return issue.message.includes('received undefined') ? `missing key ${key}` : `key ${key} must be ${expected} (${issue.message})`;
  }
  return `key ${key || '(top level)'}: ${issue.message}`;
}

/** `a.b.c=value`: the value is read as a YAML scalar (numbers, booleans, lists all work). */
export function applySet(obj: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new UsageError(`--set expects key=value (got ${assignment})`);
  const path = assignment.slice(0, eq).trim().split('.');
  const valueText = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = YAML.parse(valueText);
  } catch {
    value = valueText;
  }
  let cur: Record<string, unknown> = obj;
  for (const k of path.slice(0, -1)) {
    if (cur[k] === undefined) cur[k] = {};
    if (typeof cur[k] !== 'object' || cur[k] === null || Array.isArray(cur[k]))
      throw new UsageError(`--set ${assignment}: ${k} is not a section`);
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]] = value;
}
