/**
 * Builds the playground front-end (playground/src) into static files with esbuild:
 * `playground/dist/playground.js` and `playground.css`, everything bundled (GraphiQL, React,
 * fonts as data: URLs), nothing fetched at run time. `npm run build:playground` runs this file;
 * `prepare` runs it after every install, and demo mode runs it at start when the output is
 * missing or older than the sources.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PLAYGROUND_ASSETS } from '../src/server/playground.js';

/** This folder; compiled (`dist/playground/build.js`), still the sources' `playground/`. */
export const PLAYGROUND_DIR = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? './' : '../../playground/', import.meta.url),
);
/** This script's source, part of the stamp whether it runs from source or compiled. */
const SELF_SOURCE = join(PLAYGROUND_DIR, 'build.ts');
/** Where the built files go (gitignored). */
export const PLAYGROUND_DIST_DIR = join(PLAYGROUND_DIR, 'dist');
const SOURCE_DIR = join(PLAYGROUND_DIR, 'src');
/** Records which sources the output was built from, to tell a stale build from a current one. */
const STAMP_FILE = 'build-stamp.json';

export interface PlaygroundBuild {
  outDir: string;
  files: string[];
  bytes: number;
}

function listSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      return entry.isDirectory() ? listSources(path) : [path];
    })
    .sort();
}

/** A hash of the front-end sources, this script and the bundled packages' versions. */
function sourceStamp(): string {
  const hash = createHash('sha256');
  for (const path of [...listSources(SOURCE_DIR), SELF_SOURCE]) {
    hash.update(relative(PLAYGROUND_DIR, path)).update('\0').update(readFileSync(path));
  }
  for (const pkg of ['graphiql', '@graphiql/react', 'react', 'react-dom', 'esbuild']) {
    const manifest = join(PLAYGROUND_DIR, '..', 'node_modules', pkg, 'package.json');
    const version = existsSync(manifest)
      ? (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version
      : 'absent';
    hash.update(`${pkg}@${String(version)}\0`);
  }
  return hash.digest('hex');
}

/**
 * `missing`: no usable output. `stale`: output from other sources (rebuild when possible).
 * `current`: up to date, or no sources here to compare with (a deployment that ships only
 * the built files).
 */
export function playgroundStatus(
  outDir: string = PLAYGROUND_DIST_DIR,
): 'missing' | 'stale' | 'current' {
  if (!PLAYGROUND_ASSETS.every((name) => existsSync(join(outDir, name)))) return 'missing';
  if (!existsSync(SOURCE_DIR) || !existsSync(SELF_SOURCE)) return 'current';
  try {
    const stamp = JSON.parse(readFileSync(join(outDir, STAMP_FILE), 'utf8')) as {
      sources?: string;
    };
    return stamp.sources === sourceStamp() ? 'current' : 'stale';
  } catch {
    return 'stale';
  }
}

/**
 * Bundles the front-end. Writes into a private folder first and renames each file into place,
 * so a gateway serving the old files while this runs never reads a half-written one.
 */
export async function buildPlayground(
  outDir: string = PLAYGROUND_DIST_DIR,
): Promise<PlaygroundBuild> {
  // A dev dependency: imported only when building, so a production install without it can
  // still load this module and serve a prebuilt playground.
  const esbuild = await import('esbuild');
  const sources = sourceStamp();
  const temp = join(PLAYGROUND_DIR, `.build-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await esbuild.build({
      absWorkingDir: PLAYGROUND_DIR,
      entryPoints: { playground: join(SOURCE_DIR, 'main.tsx') },
      outdir: temp,
      bundle: true,
      minify: true,
      format: 'iife',
      platform: 'browser',
      target: ['es2020'],
      jsx: 'automatic',
      tsconfig: join(PLAYGROUND_DIR, 'tsconfig.json'),
      define: { 'process.env.NODE_ENV': '"production"' },
      legalComments: 'eof',
      logLevel: 'silent',
      write: true,
    });
    await writeFile(join(temp, STAMP_FILE), `${JSON.stringify({ sources })}\n`);
    const files = readdirSync(temp).sort();
    const unexpected = files.filter(
      (name) => name !== STAMP_FILE && !(PLAYGROUND_ASSETS as readonly string[]).includes(name),
    );
    if (unexpected.length > 0) {
      throw new Error(`the playground build wrote unexpected files: ${unexpected.join(', ')}`);
    }
    await mkdir(outDir, { recursive: true });
    let bytes = 0;
    // The stamp goes last: an interrupted build is never mistaken for a current one.
    for (const name of [...PLAYGROUND_ASSETS, STAMP_FILE]) {
      bytes += readFileSync(join(temp, name)).length;
      await rename(join(temp, name), join(outDir, name));
    }
    return { outDir, files: [...PLAYGROUND_ASSETS], bytes };
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

/**
 * Builds when the output is missing or stale. When building is impossible (no esbuild in a
 * production install) but some output exists, that output is kept and the failure reported
 * through `onWarning`; with no output at all, the error is thrown.
 */
export async function ensurePlaygroundBuilt(
  options: { outDir?: string; onWarning?: (message: string) => void } = {},
): Promise<'current' | 'built' | 'kept-stale'> {
  const outDir = options.outDir ?? PLAYGROUND_DIST_DIR;
  const status = playgroundStatus(outDir);
  if (status === 'current') return 'current';
  try {
    await buildPlayground(outDir);
    return 'built';
  } catch (error) {
    if (status === 'missing') throw error;
    options.onWarning?.(`playground rebuild failed, serving the previous build: ${String(error)}`);
    return 'kept-stale';
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now();
  buildPlayground().then(
    (result) => {
      const ms = Math.round(performance.now() - started);
      process.stdout.write(
        `playground: ${result.files.join(', ')} → ${relative(process.cwd(), result.outDir) || '.'} (${(result.bytes / 1024).toFixed(0)} KiB, ${ms} ms)\n`,
      );
    },
    (error: unknown) => {
      process.stderr.write(`playground build failed: ${String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
