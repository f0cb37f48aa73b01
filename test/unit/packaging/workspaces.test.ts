/**
 * The gateway package and the workspaces beside it (issue 14): the gateway's production install
 * (`npm ci --omit=dev --workspaces=false`, the Dockerfile's gateway-deps stage) holds what the
 * gateway's code imports and none of the model server's dependencies. Read off package.json,
 * package-lock.json and the sources, so a dependency moved to the wrong package or an import the
 * gateway's install cannot satisfy fails here, not in an image build.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { globSync } from 'tinyglobby';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../../..');

interface Manifest {
  name: string;
  workspaces?: string[];
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}
interface LockEntry extends Omit<Manifest, 'name' | 'workspaces'> {
  name?: string;
  link?: boolean;
  resolved?: string;
  dev?: boolean;
}

const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest;
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockEntry>;
};

/** Where npm resolves `name` required from the package installed at `from` (node's walk up). */
function resolveInLock(from: string, name: string): string | undefined {
  for (let dir = from; ;) {
    const key = dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`;
    if (lock.packages[key]) return key;
    if (dir === '') return undefined;
    const up = dir.lastIndexOf('/node_modules/');
    dir = up === -1 ? '' : dir.slice(0, up);
  }
}

/** Every installed path a production install of the package at `start` holds. */
function productionClosure(start: string): Set<string> {
  const seen = new Set<string>();
  const queue = [start];
  while (queue.length > 0) {
    let at = queue.pop()!;
    const entry = lock.packages[at];
    if (!entry) throw new Error(`package-lock.json has no entry ${at}`);
    if (entry.link && entry.resolved) at = entry.resolved;
    if (seen.has(at)) continue;
    seen.add(at);
    const pkg = lock.packages[at]!;
    const optionalPeers = new Set(
      Object.entries(pkg.peerDependenciesMeta ?? {})
        .filter(([, meta]) => meta.optional)
        .map(([name]) => name),
    );
    const names = [
      ...Object.keys(pkg.dependencies ?? {}),
      ...Object.keys(pkg.optionalDependencies ?? {}),
      ...Object.keys(pkg.peerDependencies ?? {}).filter((n) => !optionalPeers.has(n)),
    ];
    for (const name of names) {
      const key = resolveInLock(at, name);
      if (key) queue.push(key);
      else if (!pkg.optionalDependencies?.[name])
        throw new Error(`${at} needs ${name}: not locked`);
    }
  }
  return seen;
}

const packageName = (path: string) => path.slice(path.lastIndexOf('node_modules/') + 13);

/** The bare module specifiers a file imports (static, dynamic and re-exports). */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const patterns = [
    /^\s*(?:import|export)\b[^;]*?\bfrom\s+'([^']+)'/gms,
    /^\s*import\s+'([^']+)'/gm,
    /\bimport\(\s*'([^']+)'\s*\)/g,
  ];
  return patterns.flatMap((re) => [...text.matchAll(re)].map((m) => m[1]!));
}

/** Gateway code: src/, scripts/, bin/ and every file they reach by relative import. */
function gatewayFiles(): string[] {
  const files = new Set<string>();
  const queue = globSync(['src/**/*.ts', 'scripts/**/*.{ts,mjs}', 'bin/**/*.mjs'], {
    cwd: ROOT,
    absolute: true,
  });
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const spec of specifiers(file)) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
      if (existsSync(target)) queue.push(target);
    }
  }
  return [...files];
}

/**
 * Development tools the gateway's code loads with a guarded dynamic import: demo mode builds
 * the playground with esbuild when it can and serves the prebuilt bundle when it cannot (the
 * image ships playground/dist).
 */
const DEV_ONLY_DYNAMIC: Record<string, readonly string[]> = { 'playground/build.ts': ['esbuild'] };

const bareName = (spec: string) =>
  spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;

describe('workspaces', () => {
  const workspaces = manifest.workspaces ?? [];

  it('the reference model server and tenant services are workspaces of their own', () => {
    expect(workspaces).toEqual(['services/model-server', 'services/tickets', 'services/realm']);
    for (const dir of workspaces) {
      expect(lock.packages[dir]?.name, dir).toMatch(/^@atrium\//);
    }
  });

  it("the gateway's production install has no onnxruntime-node; the model server's has it", () => {
    const gateway = [...productionClosure('')].map(packageName);
    expect(gateway).not.toContain('onnxruntime-node');
    expect(manifest.dependencies).not.toHaveProperty('onnxruntime-node');
    const modelServer = [...productionClosure('services/model-server')].map(packageName);
    expect(modelServer).toContain('onnxruntime-node');
  });

  it("every package the gateway's code imports is one of the gateway's own dependencies", () => {
    const declared = new Set(Object.keys(manifest.dependencies ?? {}));
    const missing: string[] = [];
    for (const file of gatewayFiles()) {
      for (const spec of specifiers(file)) {
        if (spec.startsWith('.') || spec.startsWith('node:')) continue;
        const at = relative(ROOT, file);
        if (DEV_ONLY_DYNAMIC[at]?.includes(spec)) continue;
        if (!declared.has(bareName(spec))) missing.push(`${at}: ${spec}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("every package a workspace's code imports is one of that workspace's dependencies", () => {
    const missing: string[] = [];
    for (const dir of workspaces) {
      const own = JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as Manifest;
      const declared = new Set(Object.keys(own.dependencies ?? {}));
      const files = globSync([`${dir}/**/*.ts`, 'services/*.ts'], {
        cwd: ROOT,
        absolute: true,
        ignore: ['**/node_modules/**'],
      });
      for (const file of files) {
        for (const spec of specifiers(file)) {
          if (spec.startsWith('.') || spec.startsWith('node:')) continue;
          // Shared files under services/ count for a workspace only if it imports them.
          if (!file.startsWith(join(ROOT, dir)) && !importsShared(dir, file)) continue;
          if (!declared.has(bareName(spec))) missing.push(`${relative(ROOT, file)}: ${spec}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });
});

/** Whether any file of the workspace `dir` imports the shared services file `file`. */
function importsShared(dir: string, file: string): boolean {
  return globSync([`${dir}/**/*.ts`], { cwd: ROOT, absolute: true }).some((own) =>
    specifiers(own).some(
      (spec) =>
        spec.startsWith('.') && resolve(dirname(own), spec).replace(/\.js$/, '.ts') === file,
    ),
  );
}
