import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import {
  checkedConfigFileSchema,
  type ConfigFile,
  DEFAULT_MIGRATIONS_DIR,
  DEFAULT_SEED_MODULE,
} from './schema.js';

/** The environment variables Atrium reads, all of them, here and nowhere else. */
export const ENV_NAMES = [
  'ATRIUM_CONFIG',
  'ATRIUM_HOME',
  'PORT',
  'HOST',
  'DATABASE_URL',
  'REDIS_URL',
  'REDIS_CLUSTER_NODES',
  'MODEL_SERVER_PORT',
  'NODE_ENV',
  'LOG_LEVEL',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_SERVICE_NAME',
  /** Gateway worker processes (`server.workers`): a number or `auto`. */
  'ATRIUM_WORKERS',
] as const;

export type AtriumEnv = { [Name in (typeof ENV_NAMES)[number]]?: string | undefined };

export interface AtriumConfig extends ConfigFile {
  /** `demo` when started without ATRIUM_CONFIG: embedded data, memory store, dev keys. */
  mode: 'demo' | 'production';
  /** NODE_ENV=production: masked errors, no stack traces, no field suggestions. */
  production: boolean;
  logLevel: string;
  /** Where demo mode keeps its dev key pair and generated files. */
  home: string;
  /** Demo mode: the port of the reference model server started alongside (0: any free port). */
  modelServerPort: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Formats zod issues as "field: expected …, found …" lines, one per problem. */
export function describeIssues(error: z.ZodError, source: string): string {
  const lines = error.issues.map((issue) => {
    const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
    const found = 'input' in issue ? `; found ${JSON.stringify(issue.input) ?? 'nothing'}` : '';
    return `  - ${path}: ${issue.message}${found}`;
  });
  return `Invalid configuration in ${source}:\n${lines.join('\n')}`;
}

/**
 * Validates a parsed config object; throws ConfigError naming each bad field. Paths in it
 * (`schema.files`, `schema.resolvers`, `data.migrations`, `data.seed`) are made absolute
 * against `baseDir`, the config file's directory (default the working directory).
 */
export function parseConfigFile(raw: unknown, source: string, baseDir = '.'): ConfigFile {
  const result = checkedConfigFileSchema.safeParse(raw, { reportInput: true });
  if (!result.success) throw new ConfigError(describeIssues(result.error, source));
  return resolvePaths(result.data, baseDir);
}

function resolvePaths(file: ConfigFile, baseDir: string): ConfigFile {
  const at = (path: string) => resolve(baseDir, path);
  return {
    ...file,
    schema: {
      files: file.schema.files.map(at),
      resolvers: file.schema.resolvers === undefined ? undefined : at(file.schema.resolvers),
    },
    dev: file.dev && {
      ...file.dev,
      modelServer: {
        recipes: file.dev.modelServer.recipes && at(file.dev.modelServer.recipes),
        repository: file.dev.modelServer.repository && at(file.dev.modelServer.repository),
      },
    },
    data: {
      ...file.data,
      migrations: at(file.data.migrations),
      // A config that names no migrations serves the demo example whole: its seed too.
      seed:
        file.data.seed !== undefined
          ? at(file.data.seed)
          : file.data.migrations === DEFAULT_MIGRATIONS_DIR
            ? DEFAULT_SEED_MODULE
            : undefined,
    },
  };
}

export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`Cannot read config file ${path}: ${(error as Error).message}`);
  }
  try {
    return path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError(
      `Config file ${path} is not valid YAML/JSON: ${(error as Error).message}`,
    );
  }
}

function workersFromEnv(
  value: string | undefined,
  fallback: ConfigFile['server']['workers'],
): ConfigFile['server']['workers'] {
  if (value === undefined || value === '') return fallback;
  if (value === 'auto') return 'auto';
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) {
    throw new ConfigError(
      `ATRIUM_WORKERS must be a number from 1 to 256 or "auto"; found ${JSON.stringify(value)}`,
    );
  }
  return n;
}

function intFromEnv(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new ConfigError(
      `${name} must be a port number (0-65535); found ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/**
 * Applies the environment on top of a validated config file. `file` is what the config file
 * (or the demo builder) produced; env wins for the connection settings it names.
 */
export function applyEnv(
  file: ConfigFile,
  env: AtriumEnv,
  mode: AtriumConfig['mode'],
): AtriumConfig {
  const clusterNodes = env.REDIS_CLUSTER_NODES?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    ...file,
    server: {
      ...file.server,
      host: env.HOST ?? file.server.host,
      port: intFromEnv('PORT', env.PORT, file.server.port),
      workers: workersFromEnv(env.ATRIUM_WORKERS, file.server.workers),
    },
    data: { ...file.data, url: env.DATABASE_URL || file.data.url },
    redis: {
      ...file.redis,
      url: env.REDIS_URL || file.redis.url,
      cluster: clusterNodes && clusterNodes.length > 0 ? clusterNodes : file.redis.cluster,
    },
    mode,
    production: env.NODE_ENV === 'production',
    logLevel: env.LOG_LEVEL ?? 'info',
    home: resolveHome(env),
    modelServerPort: intFromEnv('MODEL_SERVER_PORT', env.MODEL_SERVER_PORT, 0),
    telemetry: applyOtelEnv(file.telemetry, env),
  };
}

function urlFromEnv(name: string, value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  try {
    new URL(value);
  } catch {
    throw new ConfigError(
      `${name} must be a URL (e.g. http://otel-collector:4318); found ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** The standard OpenTelemetry variables win over the config file's tracing settings. */
function applyOtelEnv(telemetry: ConfigFile['telemetry'], env: AtriumEnv): ConfigFile['telemetry'] {
  const { tracing } = telemetry;
  return {
    ...telemetry,
    tracing: {
      ...tracing,
      otlpEndpoint:
        urlFromEnv('OTEL_EXPORTER_OTLP_ENDPOINT', env.OTEL_EXPORTER_OTLP_ENDPOINT) ??
        tracing.otlpEndpoint,
      otlpTracesEndpoint:
        urlFromEnv('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) ??
        tracing.otlpTracesEndpoint,
      serviceName: env.OTEL_SERVICE_NAME || tracing.serviceName,
    },
  };
}

/** Where demo mode keeps its dev key pair: ATRIUM_HOME, or `.atrium` under the working directory. */
export function resolveHome(env: AtriumEnv): string {
  return resolve(env.ATRIUM_HOME ?? '.atrium');
}

/** Reads the environment (defaults to `process.env`). The only reader of process.env in src/. */
export function readEnv(source: NodeJS.ProcessEnv = process.env): AtriumEnv {
  return Object.fromEntries(ENV_NAMES.map((name) => [name, source[name]])) as AtriumEnv;
}

/**
 * Whether the config file named by ATRIUM_CONFIG is an example to run as a demo: it has a
 * `dev` section and no `auth` (demo mode brings its own keys).
 */
export function isDemoConfigFile(raw: unknown): boolean {
  return typeof raw === 'object' && raw !== null && 'dev' in raw && !('auth' in raw);
}

/** Production start: the config file named by ATRIUM_CONFIG, validated, with env applied. */
export function loadConfigFile(env: AtriumEnv): AtriumConfig {
  if (!env.ATRIUM_CONFIG) throw new ConfigError('ATRIUM_CONFIG is not set');
  const path = resolve(env.ATRIUM_CONFIG);
  return applyEnv(parseConfigFile(readConfigFile(path), path, dirname(path)), env, 'production');
}
