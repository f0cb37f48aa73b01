import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { spawnGateway } from '../support/spawn-gateway.js';
import { processAlive } from '../support/exclusive.js';

/** Pids of the processes whose command line contains `needle` (from /proc). */
function processesWith(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(needle)) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** Children of `pid` (from /proc/<n>/stat's ppid field). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

describe('a demo gateway stopped as soon as it listens', () => {
  it('takes its model server and the reference services still starting down with it', async () => {
    const gateway = await spawnGateway({});
    const pid = gateway.process.pid!;
    const port = new URL(gateway.url).port;
    // The model server is already a child; the reference services may still be starting.
    const children = childrenOf(pid);
    expect(children.length).toBeGreaterThanOrEqual(1);
    expect(await gateway.stop()).toBe(0);
    // The reference services name the gateway's JWKS URL, with its port, on their command line.
    const jwks = `--jwks http://127.0.0.1:${port}/`;
    await eventually(() => {
      expect(children.filter(processAlive)).toEqual([]);
      expect(processesWith(jwks)).toEqual([]);
    }, 10_000);
  });
});
