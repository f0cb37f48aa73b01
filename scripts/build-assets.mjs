// The non-TypeScript files the compiled code reads next to itself (engine SDL, example configs,
// SDL and migrations), copied into dist/ under the same relative paths: `npm run build` = tsc,
// then this. Plain JavaScript so the build's last step needs no tsx.
import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const ROOTS = ['src', 'services', 'examples'];
const ASSET = /\.(graphql|ya?ml|sql|json)$/;
const SKIP = new Set(['node_modules', 'models', 'repository']);

function copyAssets(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP.has(entry.name)) copyAssets(path);
    } else if (ASSET.test(entry.name)) {
      cpSync(path, join('dist', path));
    }
  }
}

for (const root of ROOTS) copyAssets(root);
