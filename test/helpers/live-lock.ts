import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

/**
 * Writes a `.flowtune.lock` into `dir` that names this (live) test process, as a flowtune
 * process running `command` would: pid, host and its start time from /proc (field 22).
 */
export function writeLiveLock(dir: string, command: string): void {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const lock = {
    pid: process.pid,
    host: hostname(),
    procStart: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19],
    since: 'now',
    command,
  };
  writeFileSync(join(dir, '.flowtune.lock'), JSON.stringify(lock));
}
