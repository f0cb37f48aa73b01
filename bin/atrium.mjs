#!/usr/bin/env node
// The package's `atrium` bin: the compiled CLI (dist/, from `npm run build`) when it exists,
// else the TypeScript source under tsx (a development checkout). Rebuild after changing
// sources, or remove dist/, for the shim to run what you edited.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = fileURLToPath(new URL('../dist/scripts/atrium.js', import.meta.url));
const source = fileURLToPath(new URL('../scripts/atrium.ts', import.meta.url));
const args = existsSync(built) ? [built] : ['--import', 'tsx', source];
const result = spawnSync(process.execPath, [...args, ...process.argv.slice(2)], {
  stdio: 'inherit',
  cwd: process.cwd(),
});
if (result.error) throw result.error;
process.exit(result.status ?? 1);
