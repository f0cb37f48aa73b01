import { pino, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level: string;
  /**
   * Where lines go. Default: stdout through an asynchronous writer, so a request never waits
   * for its log line (a synchronous pipe write was ~8% of CPU on the overhead bench); call
   * `flushLogger` before exiting. Tests pass a stream to read what was logged.
   */
  destination?: NodeJS.WritableStream;
}

/**
 * Paths censored in every line. A backstop: nothing should log a token, a cookie or GraphQL
 * variables (they carry tenants' data) in the first place, but if an object with one slips
 * through, it is censored.
 */
export const REDACTED_PATHS: readonly string[] = [
  'authorization',
  'token',
  'cookie',
  'variables',
  '*.authorization',
  '*.token',
  '*.cookie',
  '*.variables',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
];

/** The message of the one line logged per finished request (server/observability.ts). */
export const REQUEST_LOG_MESSAGE = 'request';

/**
 * The logger of the one line per finished request. That line is built in one place
 * (server/observability.ts) from fixed fields — ids, route, tenant, operation name, status,
 * codes, duration — none of them an object that could carry a header or variables, so only
 * the top-level paths are censored: the wildcard paths of the backstop cost ~6 µs per line
 * (pino walks every field), which on the cheapest request is ~2% of its CPU.
 */
export function requestLogger(logger: Logger): Logger {
  return logger.child(
    {},
    {
      redact: {
        paths: REDACTED_PATHS.filter((path) => !path.includes('.')),
        censor: '[redacted]',
      },
    },
  );
}

/** JSON lines (pino), one object per line, with `service: "atrium"` on each. */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'atrium' },
      redact: {
        paths: [...REDACTED_PATHS],
        censor: '[redacted]',
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** Writes out what the asynchronous destination still holds (before `process.exit`). */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    try {
      logger.flush(() => resolve());
    } catch {
      resolve();
    }
  });
}
