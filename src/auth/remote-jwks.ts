import type { CryptoKey, LocalJWKSet } from 'jose';
import {
  DEFAULT_JWKS_COOLDOWN_MS,
  DEFAULT_JWKS_MAX_AGE_MS,
  DEFAULT_JWKS_MAX_STALE_MS,
  DEFAULT_JWKS_TIMEOUT_MS,
} from '../config/schema.js';
import { withTimeout } from '../util/timeout.js';
import {
  KeysUnavailableError,
  localKeySet,
  selectFromKeySet,
  type KeySelector,
  type KeySource,
} from './key-sources.js';

/** How soon a failed fetch may be retried (never more often than the cooldown allows). */
export const DEFAULT_JWKS_RETRY_AFTER_FAILURE_MS = 1_000;
/** Largest JWKS document accepted; real ones are a few KiB. */
export const DEFAULT_JWKS_MAX_BYTES = 512 * 1024;

/** The request a JWKS fetch makes; `globalThis.fetch` and undici's `fetch` both accept it. */
export interface JwksFetchInit {
  method: 'GET';
  headers: Record<string, string>;
  /** Redirects are not followed: the configured URL is the only place keys come from. */
  redirect: 'manual';
  signal: AbortSignal;
}

/** The part of a fetch `Response` the JWKS client reads. */
export interface JwksFetchResponse {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  readonly body?: { cancel(): Promise<void> } | null;
  text(): Promise<string>;
}

/** A fetch function (global fetch, undici's fetch bound to a dispatcher, or a test double). */
export type JwksFetch = (url: string, init: JwksFetchInit) => Promise<JwksFetchResponse>;

export interface RemoteJwksOptions {
  /** The JWKS URL (https in production). */
  url: string;
  /** Default `globalThis.fetch`. */
  fetch?: JwksFetch | undefined;
  /** Bound on one fetch, headers and body included. Default 5 s. */
  timeoutMs?: number | undefined;
  /**
   * After a successful fetch, an unknown `kid` does not trigger another fetch for this long, so a
   * flood of tokens with random kids costs at most one fetch per cooldown. Default 30 s.
   */
  cooldownMs?: number | undefined;
  /** A key set older than this is refreshed before use. Default 10 min. */
  maxAgeMs?: number | undefined;
  /**
   * While refreshes fail, the last good key set stays in use for this long past `maxAgeMs`;
   * after that, verification fails until a fetch succeeds. Default 1 h.
   */
  maxStaleMs?: number | undefined;
  /** After a failed fetch, the next may start this much later (capped by cooldownMs). Default 1 s. */
  retryAfterFailureMs?: number | undefined;
  /** Default 512 KiB. */
  maxBytes?: number | undefined;
  /** Milliseconds since the epoch. Default `Date.now`. */
  now?: (() => number) | undefined;
  /** Told about every failed fetch (for logs); must not throw. */
  onFetchError?: ((error: Error) => void) | undefined;
}

/** Counters and state of a remote key set, for metrics and readiness. */
export interface RemoteJwksStatus {
  /** Fetches started (successful or not). */
  readonly fetches: number;
  readonly failures: number;
  /** `empty`: never fetched; `fresh`: within maxAge; `stale`: past maxAge but still used; `expired`: past maxStale, unused. */
  readonly state: 'empty' | 'fresh' | 'stale' | 'expired';
  readonly keys: number;
  readonly lastSuccessAt: number | undefined;
  readonly lastError: string | undefined;
}

/** A JWKS endpoint as a key source. */
export interface RemoteJwks extends KeySource {
  /**
   * Fetches unless one is in flight or the cooldown forbids it; never rejects. Resolves whether
   * a usable key set is held afterwards (for readiness checks and warm-up at start).
   */
  refresh(): Promise<boolean>;
  status(): RemoteJwksStatus;
}

class JwksFetchError extends Error {
  override name = 'JwksFetchError';
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new TypeError(`${name} must be a non-negative number of milliseconds; got ${value}`);
  }
  return value;
}

/**
 * A remote JWKS with bounded staleness. jose's `createRemoteJWKSet` drops to an error as soon as
 * a refresh fails and retries failed fetches on every request; this client keeps the last good
 * key set for `maxStaleMs`, rate-limits fetches after failures too, and shares one in-flight
 * fetch between concurrent callers. Key selection within a set is jose's (`createLocalJWKSet`).
 * No timers run between requests: there is nothing to close.
 */
export function createRemoteJwks(options: RemoteJwksOptions): RemoteJwks {
  let url: string;
  try {
    url = new URL(options.url).href;
  } catch {
    throw new TypeError(`jwks.url must be an absolute URL; got ${JSON.stringify(options.url)}`);
  }
  const fetchFn: JwksFetch = options.fetch ?? ((u, init) => globalThis.fetch(u, init));
  const timeoutMs = positive('jwks.timeoutMs', options.timeoutMs ?? DEFAULT_JWKS_TIMEOUT_MS);
  const cooldownMs = positive('jwks.cooldownMs', options.cooldownMs ?? DEFAULT_JWKS_COOLDOWN_MS);
  const maxAgeMs = positive('jwks.maxAgeMs', options.maxAgeMs ?? DEFAULT_JWKS_MAX_AGE_MS);
  const maxStaleMs = positive('jwks.maxStaleMs', options.maxStaleMs ?? DEFAULT_JWKS_MAX_STALE_MS);
  const retryAfterFailureMs = Math.min(
    cooldownMs,
    positive(
      'jwks.retryAfterFailureMs',
      options.retryAfterFailureMs ?? DEFAULT_JWKS_RETRY_AFTER_FAILURE_MS,
    ),
  );
  const maxBytes = options.maxBytes ?? DEFAULT_JWKS_MAX_BYTES;
  const now = options.now ?? Date.now;

  let current: { set: LocalJWKSet; fetchedAt: number; keys: number } | undefined;
  let lastAttempt: { at: number; ok: boolean } | undefined;
  let inflight: Promise<void> | undefined;
  let fetches = 0;
  let failures = 0;
  let lastError: string | undefined;

  function usableSet(t: number): LocalJWKSet | undefined {
    return current !== undefined && t - current.fetchedAt <= maxAgeMs + maxStaleMs
      ? current.set
      : undefined;
  }

  function mayFetch(t: number): boolean {
    if (inflight !== undefined || lastAttempt === undefined) return true;
    return t - lastAttempt.at >= (lastAttempt.ok ? cooldownMs : retryAfterFailureMs);
  }

  async function download(): Promise<unknown> {
    const controller = new AbortController();
    // One budget for the headers and the body; performance.now, not `now`, which tests move.
    const started = performance.now();
    const timedOut = (): never => {
      controller.abort();
      throw new JwksFetchError(`JWKS fetch timed out after ${timeoutMs} ms`);
    };
    // The bound holds even if a fetch implementation ignores its signal.
    const response = await withTimeout(
      fetchFn(url, {
        method: 'GET',
        headers: { accept: 'application/jwk-set+json, application/json' },
        redirect: 'manual',
        signal: controller.signal,
      }),
      timeoutMs,
      timedOut,
    );
    const declared = Number(response.headers.get('content-length') ?? '0');
    if (response.status !== 200 || declared > maxBytes) {
      response.body?.cancel().catch(() => undefined);
      throw new JwksFetchError(
        response.status !== 200
          ? `JWKS endpoint answered HTTP ${response.status}`
          : `JWKS document larger than ${maxBytes} bytes`,
      );
    }
    const text = await withTimeout(
      response.text(),
      timeoutMs - (performance.now() - started),
      timedOut,
    );
    if (text.length > maxBytes) {
      throw new JwksFetchError(`JWKS document larger than ${maxBytes} bytes`);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new JwksFetchError('JWKS document is not JSON');
    }
  }

  async function fetchKeySet(): Promise<void> {
    fetches += 1;
    try {
      const document = await download();
      const set = localKeySet(document);
      const keys = Array.isArray((document as { keys?: unknown }).keys)
        ? (document as { keys: unknown[] }).keys.length
        : 0;
      current = { set, fetchedAt: now(), keys };
      lastAttempt = { at: now(), ok: true };
      lastError = undefined;
    } catch (error) {
      failures += 1;
      lastAttempt = { at: now(), ok: false };
      const failure =
        error instanceof JwksFetchError
          ? error
          : new JwksFetchError(`JWKS fetch failed: ${(error as Error)?.message ?? String(error)}`, {
              cause: error,
            });
      lastError = failure.message;
      try {
        options.onFetchError?.(failure);
      } catch {
        // A logging hook must not turn a fetch failure into a request failure.
      }
    }
  }

  function fetchShared(): Promise<void> {
    inflight ??= fetchKeySet().finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  function requireSet(): LocalJWKSet {
    const set = usableSet(now());
    if (set === undefined) {
      throw new KeysUnavailableError(
        current === undefined
          ? `no JWKS fetched yet from ${url}${lastError ? ` (${lastError})` : ''}`
          : `JWKS from ${url} is older than maxAgeMs + maxStaleMs${lastError ? ` (${lastError})` : ''}`,
      );
    }
    return set;
  }

  return {
    async keysFor(selector: KeySelector): Promise<readonly CryptoKey[]> {
      const t = now();
      if ((current === undefined || t - current.fetchedAt > maxAgeMs) && mayFetch(t)) {
        await fetchShared();
      }
      let keys = await selectFromKeySet(requireSet(), selector);
      if (keys.length === 0 && mayFetch(now())) {
        // Unknown kid: the issuer may have rotated keys. The cooldown bounds how often this runs.
        await fetchShared();
        keys = await selectFromKeySet(requireSet(), selector);
      }
      return keys;
    },

    async refresh(): Promise<boolean> {
      if (mayFetch(now())) await fetchShared();
      return usableSet(now()) !== undefined;
    },

    status(): RemoteJwksStatus {
      const t = now();
      let state: RemoteJwksStatus['state'] = 'empty';
      if (current !== undefined) {
        const age = t - current.fetchedAt;
        state = age <= maxAgeMs ? 'fresh' : age <= maxAgeMs + maxStaleMs ? 'stale' : 'expired';
      }
      return {
        fetches,
        failures,
        state,
        keys: current?.keys ?? 0,
        lastSuccessAt: current?.fetchedAt,
        lastError,
      };
    },
  };
}
