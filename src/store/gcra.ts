import type { GcraDecision, GcraPolicy } from './types.js';

/**
 * The generic cell rate algorithm, as a pure step function. The Redis store runs the same
 * arithmetic in Lua (`scripts.ts`); the memory store and the local fallback run this one.
 *
 * State is the theoretical arrival time (TAT): when the key would be back to empty if nothing
 * else arrived. Each admitted request pushes it `cost × interval` further; a request is
 * admitted while TAT stays within `limit × interval` of now, where `limit = burst + 1`. The
 * same convention as redis-cell and throttled, so `burst: 0` means strictly paced.
 */
export interface GcraStep {
  readonly decision: GcraDecision;
  /** The TAT to store when allowed (ms), and how long it matters (ms). */
  readonly newTatMs?: number | undefined;
  readonly ttlMs?: number | undefined;
}

/** Validates a policy; a bad one is a caller mistake (config is validated at start). */
export function assertGcraPolicy(policy: GcraPolicy): void {
  const { perSecond, burst, cost = 1 } = policy;
  if (!(typeof perSecond === 'number' && Number.isFinite(perSecond) && perSecond > 0)) {
    throw new TypeError(`rate limit: perSecond must be a number > 0; received ${perSecond}`);
  }
  if (!(Number.isInteger(burst) && burst >= 0)) {
    throw new TypeError(`rate limit: burst must be an integer ≥ 0; received ${burst}`);
  }
  if (!(Number.isInteger(cost) && cost >= 1)) {
    throw new TypeError(`rate limit: cost must be an integer ≥ 1; received ${cost}`);
  }
  if (cost > burst + 1) {
    // Such a request could never be admitted, and its retry-after would be a lie.
    throw new TypeError(
      `rate limit: cost ${cost} exceeds what a full bucket holds (burst + 1 = ${burst + 1})`,
    );
  }
}

export function gcraStep(
  storedTatMs: number | undefined,
  nowMs: number,
  policy: GcraPolicy,
): GcraStep {
  const interval = 1000 / policy.perSecond;
  const limit = policy.burst + 1;
  const cost = policy.cost ?? 1;
  const tat = storedTatMs === undefined || storedTatMs < nowMs ? nowMs : storedTatMs;
  const newTat = tat + interval * cost;
  const allowAt = newTat - interval * limit;
  const diff = nowMs - allowAt;
  if (diff < 0) {
    return {
      decision: {
        allowed: false,
        limit,
        remaining: 0,
        resetSeconds: (tat - nowMs) / 1000,
        retryAfterSeconds: -diff / 1000,
      },
    };
  }
  return {
    decision: {
      allowed: true,
      limit,
      remaining: Math.floor(diff / interval + 1e-9),
      resetSeconds: (newTat - nowMs) / 1000,
      retryAfterSeconds: 0,
    },
    newTatMs: newTat,
    ttlMs: Math.ceil(newTat - nowMs),
  };
}
