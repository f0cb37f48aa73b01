/**
 * Plain JavaScript for the processes a comparison runs without tsx: Atrium's own sources
 * (src/, services/, examples/, scripts/, playground/build.ts) transpiled file by file as `npm run build` lays them out in
 * dist/ (the same relative paths, the same assets beside them, started as `node src/main.js`
 * like `npm run start:prod`), and the peer servers of bench/peers/ bundled one file each with
 * their packages left to node_modules. Both land under `.atrium/bench/js/` (gitignored), inside
 * the checkout so that packages resolve from its node_modules.
 */
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { globSync } from 'tinyglobby';
import { ROOT } from './processes.js';

export const JS_DIR = join(ROOT, '.atrium/bench/js');
const ASSET = /\.(graphql|ya?ml|sql|json)$/;
const SKIP = ['**/node_modules/**', '**/models/**', '**/repository/**'];

export interface BuiltJs {
  /** Atrium's entry point, `<JS_DIR>/src/main.js`. */
  atriumMain: string;
  /** One bundled `.mjs` per peer, by file name (`apollo-docs`, `mercurius`, `yoga`). */
  peers: Record<string, string>;
  buildMs: number;
}

export async function buildJs(peerNames: readonly string[]): Promise<BuiltJs> {
  const started = performance.now();
  rmSync(JS_DIR, { recursive: true, force: true });
  // What tsconfig.build.json compiles, and the playground's build module that src/app.ts imports.
  const sources = globSync(
    [
      'src/**/*.ts',
      'services/**/*.ts',
      'examples/**/*.ts',
      'scripts/**/*.ts',
      'playground/build.ts',
    ],
    {
      cwd: ROOT,
      ignore: [...SKIP, '**/*.test.ts', '**/*.d.ts'],
    },
  );
  await build({
    entryPoints: sources.map((s) => join(ROOT, s)),
    outdir: JS_DIR,
    outbase: ROOT,
    bundle: false,
    format: 'esm',
    platform: 'node',
    // tsconfig.json's target: what tsc emits into dist/.
    target: 'es2022',
    sourcemap: false,
    logLevel: 'warning',
  });
  for (const asset of globSync(['src/**/*', 'services/**/*', 'examples/**/*'], {
    cwd: ROOT,
    ignore: SKIP,
  })) {
    if (!ASSET.test(asset)) continue;
    mkdirSync(join(JS_DIR, asset, '..'), { recursive: true });
    cpSync(join(ROOT, asset), join(JS_DIR, asset));
  }
  await build({
    entryPoints: peerNames.map((name) => join(ROOT, 'bench/peers', `${name}.ts`)),
    outdir: join(JS_DIR, 'peers'),
    outExtension: { '.js': '.mjs' },
    bundle: true,
    packages: 'external',
    format: 'esm',
    platform: 'node',
    target: 'es2022',
    logLevel: 'warning',
  });
  return {
    atriumMain: join(JS_DIR, 'src/main.js'),
    peers: Object.fromEntries(
      peerNames.map((name) => [name, join(JS_DIR, 'peers', `${name}.mjs`)]),
    ),
    buildMs: performance.now() - started,
  };
}
