import { readFileSync } from 'node:fs';
import { ConfigError } from './load.js';
import type { SecretRef } from './schema.js';

/**
 * The value a secret reference names: an environment variable or a file (trimmed). Read when
 * first needed, never written into the config or a log. Throws ConfigError naming the
 * reference (not the value) when it is missing.
 */
export function readSecret(ref: SecretRef, source: NodeJS.ProcessEnv = process.env): string {
  if ('env' in ref) {
    const value = source[ref.env];
    if (value === undefined || value === '') {
      throw new ConfigError(`the secret environment variable ${ref.env} is not set`);
    }
    return value;
  }
  try {
    return readFileSync(ref.file, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(
      `the secret file ${ref.file} cannot be read: ${(error as Error).message}`,
    );
  }
}
