import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import { UsageError } from './errors.js';

/**
 * Memory this process can still use: MemAvailable from /proc/meminfo (free + reclaimable
 * cache; os.freemem() ignores the cache), lowered by a cgroup limit when one is set.
 */
export function availableMemoryBytes(): number {
  let avail = freemem();
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) avail = Number(m[1]) * 1024;
  } catch {
    // not Linux: os.freemem() it is
  }
  const read = (f: string) => {
    try {
      const v = readFileSync(f, 'utf8').trim();
      return /^\d+$/.test(v) ? Number(v) : null;
    } catch {
      return null;
    }
  };
  const max = read('/sys/fs/cgroup/memory.max') ?? read('/sys/fs/cgroup/memory/memory.limit_in_bytes');
  const cur = read('/sys/fs/cgroup/memory.current') ?? read('/sys/fs/cgroup/memory/memory.usage_in_bytes') ?? 0;
  if (max !== null && max < 2 ** 60) avail = Math.min(avail, Math.max(0, max - cur));
  return avail;
}

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) (n /= 1000), i++;
  return `${n < 10 && i > 0 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

/**
 * Refuses a size before anything is allocated: `bytes` is a lower bound on what `what` will
 * hold at once (so a refusal is never wrong), checked against the memory available now.
 */
export function checkMemory(what: string, bytes: number, available = availableMemoryBytes()): void {
  if (!Number.isFinite(bytes) || bytes > available) {
    throw new UsageError(
      `${what} needs at least ${Number.isFinite(bytes) ? formatBytes(bytes) : 'unbounded memory'}, more than the ${formatBytes(available)} of memory available`,
    );
  }
}
