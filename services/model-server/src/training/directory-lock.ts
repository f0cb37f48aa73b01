import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Default time to wait for another process to finish building the same repository. */
export const DEFAULT_LOCK_TIMEOUT_MS = 120_000;
/** A lock without an owner file this old was left by a process that died while taking it. */
const ORPHAN_AGE_MS = 30_000;
const POLL_MS = 100;

/**
 * Takes a lock shared by every process on the machine: `mkdir` is atomic, and the owner's pid
 * is written inside. A lock whose owner died is taken over (renamed away first, so two waiters
 * cannot both delete the next owner's lock). Resolves to the release function.
 */
export async function acquireDirectoryLock(
  dir: string,
  timeoutMs = DEFAULT_LOCK_TIMEOUT_MS,
): Promise<() => Promise<void>> {
  const owner = path.join(dir, 'pid');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(dir);
      await writeFile(owner, String(process.pid));
      return () => rm(dir, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(await readFile(owner, 'utf8').catch(() => ''));
    const abandoned =
      Number.isInteger(holder) && holder > 0
        ? !alive(holder)
        : Date.now() - (await modifiedAt(dir)) > ORPHAN_AGE_MS;
    if (abandoned) {
      const stale = `${dir}.stale-${process.pid}-${Math.random().toString(36).slice(2)}`;
      try {
        await rename(dir, stale);
        await rm(stale, { recursive: true, force: true });
      } catch (err) {
        // Another waiter took it over first.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`${dir} is still held by process ${String(holder)} after ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function modifiedAt(p: string): Promise<number> {
  try {
    return (await stat(p)).mtimeMs;
  } catch {
    // Gone already: the next mkdir will tell.
    return Date.now();
  }
}
