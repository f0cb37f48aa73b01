/**
 * Writes the JSON Schema of the config file (`docs/atrium.schema.json`), generated from the zod
 * schema that the gateway validates with (`src/config/schema.ts`), so editors check and
 * complete `atrium.yaml` (the example configs name it in a `yaml-language-server` comment).
 *
 *   npm run config:schema               # rewrite the file
 *   npm run config:schema -- --check    # exit 1 if the committed file is stale
 *
 * The input side of the schema (`io: 'input'`): what may be written, defaults optional.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { configFileSchema } from '../src/config/schema.js';

export const CONFIG_JSON_SCHEMA_PATH = fileURLToPath(
  new URL('../docs/atrium.schema.json', import.meta.url),
);

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Drops defaults that are paths into this checkout (the demo example's files): they differ
 * from machine to machine, and a config file's own paths are relative to it anyway.
 */
function withoutLocalPaths(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutLocalPaths);
  if (node === null || typeof node !== 'object') return node;
  const local = (v: unknown): boolean =>
    (typeof v === 'string' && v.startsWith(ROOT)) || (Array.isArray(v) && v.some(local));
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !(key === 'default' && local(value)))
      .map(([key, value]) => [key, withoutLocalPaths(value)]),
  );
}

/** The JSON Schema text, as committed. */
export function configJsonSchema(): string {
  const schema = z.toJSONSchema(configFileSchema, {
    io: 'input',
    target: 'draft-2020-12',
    // Refinements (cross-field checks) have no JSON Schema form: the gateway still runs them.
    unrepresentable: 'any',
  });
  return `${JSON.stringify(
    {
      ...(withoutLocalPaths(schema) as object),
      $id: 'https://atrium.dev/schema/atrium.schema.json',
      title: 'Atrium gateway configuration',
    },
    null,
    2,
  )}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = configJsonSchema();
  if (process.argv.includes('--check')) {
    const committed = readFileSync(CONFIG_JSON_SCHEMA_PATH, 'utf8');
    if (committed !== text) {
      console.error(`${CONFIG_JSON_SCHEMA_PATH} is stale: run npm run config:schema`);
      process.exit(1);
    }
    console.log(`${CONFIG_JSON_SCHEMA_PATH} is up to date`);
  } else {
    writeFileSync(CONFIG_JSON_SCHEMA_PATH, text);
    console.log(`wrote ${CONFIG_JSON_SCHEMA_PATH}`);
  }
}
