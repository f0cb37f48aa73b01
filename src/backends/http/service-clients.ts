import { LRUCache } from 'lru-cache';
import type { ServiceConfig } from '../../config/schema.js';
import { createHttpExchange, type HttpExchange } from '../resilience/http-exchange.js';
import {
  AttemptFailure,
  createResiliencePolicy,
  type ResiliencePolicy,
} from '../resilience/policy.js';

/** One call to a tenant service, already rendered (path and query encoded). */
export interface ServiceRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: string | undefined;
  headers: Readonly<Record<string, string>>;
}

export interface ServiceCallOptions {
  /** The calling tenant: its failures count against its own breaker first. */
  tenant: string;
  signal?: AbortSignal | undefined;
  /**
   * Checks the parsed answer inside the attempt; return a reason to refuse it as malformed
   * (not retried, a health failure of the service like any unusable answer).
   */
  validate?: ((value: unknown) => string | undefined) | undefined;
}

/** What a call did, for metrics and tests. */
export interface ServiceCallEvent {
  service: string;
  tenant: string;
  origin: string;
  ok: boolean;
  durationMs: number;
}

export interface ServiceClients {
  /** The parsed JSON answer of one call under the service's resilience policy. */
  call(
    service: string,
    origin: string,
    request: ServiceRequest,
    options: ServiceCallOptions,
  ): Promise<unknown>;
  /** Readiness: the service's health path on its default URL answers 2xx. */
  probe(service: string): Promise<void>;
  /** The breaker of (service, origin), once called (tests, metrics). */
  policy(service: string, origin: string): ResiliencePolicy | undefined;
  close(): Promise<void>;
}

export interface ServiceClientsOptions {
  services: Readonly<Record<string, ServiceConfig>>;
  /** Distinct (service, origin) pairs kept open at once; the least used closes first. */
  maxOrigins?: number | undefined;
  onCall?: ((event: ServiceCallEvent) => void) | undefined;
}

interface Upstream {
  exchange: HttpExchange;
  policy: ResiliencePolicy;
}

/**
 * The HTTP clients of every configured tenant service: a keep-alive pool and one resilience
 * policy (deadline, retry budget, tenant and shared breakers, the same module the model
 * backends use) per (service, origin) — a tenant's own deployment is its own origin.
 */
export function createServiceClients(options: ServiceClientsOptions): ServiceClients {
  const upstreams = new LRUCache<string, Upstream>({
    max: options.maxOrigins ?? 500,
    dispose: (upstream) => void upstream.exchange.close(),
  });

  function upstreamFor(service: string, origin: string): Upstream {
    const key = `${service} ${origin}`;
    let upstream = upstreams.get(key);
    if (upstream) return upstream;
    const config = options.services[service];
    if (!config) throw new TypeError(`unknown service ${service}`);
    const label = `Service ${service}`;
    upstream = {
      exchange: createHttpExchange({
        origin,
        label,
        connections: config.connections,
        attemptTimeoutMs: config.timeoutMs,
      }),
      policy: createResiliencePolicy({
        label,
        timeoutMs: config.timeoutMs,
        retry: { maxAttempts: config.maxAttempts },
      }),
    };
    upstreams.set(key, upstream);
    return upstream;
  }

  return {
    async call(service, origin, request, { tenant, signal, validate }) {
      const { exchange, policy } = upstreamFor(service, origin);
      const maxResponseBytes = options.services[service]?.maxResponseBytes ?? 1024 * 1024;
      const started = performance.now();
      let ok = false;
      try {
        const value = await policy.call(
          async (attempt) => {
            const answer = await exchange.send({
              ...request,
              signal: attempt.signal,
              maxResponseBytes,
            });
            if (answer.status < 200 || answer.status >= 300) {
              throw exchange.statusFailure(request, answer);
            }
            if (answer.text === null) {
              throw new AttemptFailure(
                'malformed',
                exchange.unavailable(
                  'answer too large',
                  `${request.method} ${request.path}: over ${maxResponseBytes} bytes`,
                ),
              );
            }
            let parsed: unknown;
            try {
              parsed = JSON.parse(answer.text);
            } catch (error) {
              throw new AttemptFailure(
                'malformed',
                exchange.unavailable(
                  'invalid answer',
                  `${request.method} ${request.path}: not JSON`,
                  error,
                ),
              );
            }
            const invalid = validate?.(parsed);
            if (invalid !== undefined) {
              throw new AttemptFailure(
                'malformed',
                exchange.unavailable(
                  'invalid answer',
                  `${request.method} ${request.path}: ${invalid}`,
                ),
              );
            }
            return parsed;
          },
          { tenant, signal },
        );
        ok = true;
        return value;
      } finally {
        try {
          options.onCall?.({
            service,
            tenant,
            origin,
            ok,
            durationMs: performance.now() - started,
          });
        } catch {
          // An observer must not change an answer.
        }
      }
    },

    async probe(service) {
      const config = options.services[service];
      if (!config?.url || !config.healthPath) return;
      const origin = new URL(config.url).origin;
      const { exchange, policy } = upstreamFor(service, origin);
      const path = new URL(config.healthPath, config.url).pathname;
      await policy.once(async (attempt) => {
        const answer = await exchange.send({
          method: 'GET',
          path,
          signal: attempt.signal,
          maxResponseBytes: 64 * 1024,
        });
        if (answer.status < 200 || answer.status >= 300)
          throw exchange.statusFailure({ method: 'GET', path }, answer);
      });
    },

    policy: (service, origin) => upstreams.get(`${service} ${origin}`)?.policy,

    async close() {
      const all = [...upstreams.values()];
      upstreams.clear();
      await Promise.all(all.map((u) => u.exchange.close()));
    },
  };
}
