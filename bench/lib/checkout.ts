/**
 * Another commit of Atrium, checked out beside this one to be measured side by side with it: a
 * detached git worktree under `.atrium/bench/` (gitignored) with its own `npm ci`, made once and
 * reused by later runs while it is still at that commit.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './processes.js';

const run = promisify(execFile);

/** Where the checkouts live: in this checkout, ignored by git (`.atrium/`). */
export const CHECKOUTS_DIR = join(ROOT, '.atrium/bench');
/** Written into the checkout's node_modules once `npm ci` succeeded there. */
const READY_FILE = 'node_modules/.atrium-bench-ready';

export interface Checkout {
  /** The worktree's directory. */
  root: string;
  /** Full commit id. */
  commit: string;
  /** False when this call made it (worktree and/or `npm ci`). */
  reused: boolean;
}

async function git(args: string[], cwd = ROOT): Promise<string> {
  const { stdout } = await run('git', args, { cwd, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

/** Runs a command with its output kept (shown only if it fails). */
function command(
  file: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-64 * 1024);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else
        reject(
          new Error(
            `${file} ${args.join(' ')} (in ${options.cwd}) exited with ${code ?? signal}:\n${output.slice(-4000)}`,
          ),
        );
    });
  });
}

/**
 * A worktree of `ref` at `.atrium/bench/<name>` with its dependencies installed (`npm ci`, with
 * the checkout's own lockfile and `.npmrc`). Reused when present at the same commit with a
 * completed install; otherwise (re)made.
 */
export async function ensureCheckout(
  ref: string,
  name: string,
  log: (message: string) => void,
): Promise<Checkout> {
  const commit = await git(['rev-parse', '--verify', `${ref}^{commit}`]);
  const root = join(CHECKOUTS_DIR, name);
  const ready = join(root, READY_FILE);
  let head: string | undefined;
  if (existsSync(join(root, '.git'))) {
    head = await git(['rev-parse', 'HEAD'], root).catch(() => undefined);
  }
  if (head === commit && (await readFile(ready, 'utf8').catch(() => '')).trim() === commit) {
    return { root, commit, reused: true };
  }
  if (head === undefined) {
    await mkdir(CHECKOUTS_DIR, { recursive: true });
    // A directory left by a worktree git has forgotten (or a half-made one) is replaced.
    await git(['worktree', 'prune']);
    log(`checkout: git worktree add --detach ${root} ${commit.slice(0, 10)}`);
    await git(['worktree', 'add', '--force', '--detach', root, commit]);
  } else if (head !== commit) {
    log(`checkout: ${root} is at ${head.slice(0, 10)}; moving it to ${commit.slice(0, 10)}`);
    await git(['checkout', '--detach', '--force', commit], root);
  }
  log(`checkout: npm ci in ${root} (once; later runs reuse it)`);
  const started = performance.now();
  await command('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, timeoutMs: 15 * 60_000 });
  await writeFile(ready, `${commit}\n`);
  log(`checkout: npm ci done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return { root, commit, reused: false };
}

/**
 * `npm run <script> -- <args>` in a checkout, with `env` added (ATRIUM_CONFIG, DATABASE_URL, …);
 * resolves to its output.
 */
export function runCheckoutScript(
  checkout: Pick<Checkout, 'root'>,
  script: string,
  args: readonly string[],
  env: Record<string, string>,
): Promise<string> {
  return command('npm', ['run', '--silent', script, '--', ...args], {
    cwd: checkout.root,
    env: { ...process.env, ...env },
    timeoutMs: 10 * 60_000,
  });
}
