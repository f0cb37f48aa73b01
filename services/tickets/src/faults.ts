/**
 * Injected faults (`POST /_faults`), so that the gateway's tests can make this real service
 * fail the ways upstreams do: an error status, a body too large, a body that is not JSON, or a
 * slow answer.
 */
import { TicketsError } from './errors.js';

export const FAULT_MODES = ['none', 'status500', 'oversized', 'malformed', 'slow'] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

/** Default size of an `oversized` body: 10 MB, past any sane response limit. */
export const DEFAULT_OVERSIZED_BYTES = 10_000_000;
/** Largest `bytes` accepted (the body is streamed, never held whole). */
export const MAX_OVERSIZED_BYTES = 1024 ** 3;
/** Default delay of `slow`. */
export const DEFAULT_SLOW_DELAY_MS = 5_000;
/** Longest `delayMs` accepted. */
export const MAX_SLOW_DELAY_MS = 600_000;

/** The fault in force, with its defaults filled in. */
export interface Fault {
  mode: FaultMode;
  /** `slow`: how long to wait before answering normally. */
  delayMs: number;
  /** `oversized`: the body's size in bytes. */
  bytes: number;
  /**
   * How many more data requests it applies to; `null` = until replaced. After the last, the
   * mode returns to `none` (so a breaker can be seen to recover without another call).
   */
  remaining: number | null;
}

export const NO_FAULT: Fault = {
  mode: 'none',
  delayMs: DEFAULT_SLOW_DELAY_MS,
  bytes: DEFAULT_OVERSIZED_BYTES,
  remaining: null,
};

/** Parses a `POST /_faults` body: `{ mode, delayMs?, bytes?, count? }`. */
export function parseFault(body: unknown): Fault {
  const bad = (message: string): TicketsError => new TicketsError(400, 'BAD_REQUEST', message);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw bad('fault body must be a JSON object { "mode": ..., "delayMs"?, "bytes"?, "count"? }');
  }
  const { mode, delayMs, bytes, count, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) {
    throw bad(`unknown fault field(s) ${unknown.join(', ')}; known: mode, delayMs, bytes, count`);
  }
  if (typeof mode !== 'string' || !(FAULT_MODES as readonly string[]).includes(mode)) {
    throw bad(`fault mode must be one of ${FAULT_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
  }
  const integer = (name: string, value: unknown, min: number, max: number): number | undefined => {
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw bad(`fault ${name} must be an integer in ${min}..${max}, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  return {
    mode: mode as FaultMode,
    delayMs: integer('delayMs', delayMs, 0, MAX_SLOW_DELAY_MS) ?? DEFAULT_SLOW_DELAY_MS,
    bytes: integer('bytes', bytes, 1, MAX_OVERSIZED_BYTES) ?? DEFAULT_OVERSIZED_BYTES,
    remaining: integer('count', count, 1, 1_000_000_000) ?? null,
  };
}

/** The fault state shared by all connections. */
export interface Faults {
  current(): Fault;
  set(fault: Fault): void;
  /** The fault for the data request arriving now (counting it against `count`). */
  take(): Fault;
}

export function createFaults(): Faults {
  let fault = NO_FAULT;
  return {
    current: () => fault,
    set(next) {
      fault = next;
    },
    take() {
      const taken = fault;
      if (taken.remaining !== null) {
        fault = taken.remaining <= 1 ? NO_FAULT : { ...taken, remaining: taken.remaining - 1 };
      }
      return taken;
    },
  };
}
