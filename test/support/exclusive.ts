import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A lock across vitest workers (and any other process on the machine), so suites that start
 * several gateway processes and drive load through them run one at a time: on a 2-core machine
 * two of them at once starve each other, and their figures (accepted counts, latencies) would
 * measure the scheduler. `mkdir` is atomic; a lock whose holder died is taken over.
 * Resolves to the release function.
 */
export async function holdExclusive(
  name: string,
  timeoutMs = 120_000,
): Promise<() => Promise<void>> {
  const dir = join(tmpdir(), `atrium-exclusive-${name}`);
  const owner = join(dir, 'pid');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(dir);
      await writeFile(owner, String(process.pid));
      return () => rm(dir, { recursive: true, force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number(await readFile(owner, 'utf8').catch(() => ''));
    if (Number.isInteger(holder) && holder > 0 && !processAlive(holder)) {
      await rm(dir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline)
      throw new Error(`${dir} still held by ${holder} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Whether process `pid` exists (one of another user counts: signalling it is refused, EPERM). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
