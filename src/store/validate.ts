import { assertGcraPolicy } from './gcra.js';
import { hashTagOf } from './keys.js';
import type { AdmitRequest, LeaseRequest, QuotaRequest } from './types.js';

// Argument checks shared by both stores, so both reject the same caller mistakes the same
// way (TypeError, at once, before any I/O).

export function assertKey(key: unknown, operation: string): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new TypeError(`${operation}: key must be a non-empty string; received ${typeof key}`);
  }
}

export function assertValue(value: unknown, operation: string): asserts value is string {
  if (typeof value !== 'string') {
    throw new TypeError(
      `${operation}: value must be a string (serialise it); received ${typeof value}`,
    );
  }
}

export function assertTtlSeconds(ttl: unknown, operation: string): asserts ttl is number {
  if (!(typeof ttl === 'number' && Number.isInteger(ttl) && ttl > 0)) {
    throw new TypeError(
      `${operation}: ttlSeconds must be a whole number > 0; received ${String(ttl)}`,
    );
  }
}

export function assertLeaseRequest(request: LeaseRequest): void {
  if (typeof request.leaseId !== 'string' || request.leaseId.length === 0) {
    throw new TypeError('acquireLease: leaseId must be a non-empty string');
  }
  if (!(Number.isInteger(request.limit) && request.limit >= 1)) {
    throw new TypeError(`acquireLease: limit must be an integer ≥ 1; received ${request.limit}`);
  }
  if (!(Number.isInteger(request.ttlMs) && request.ttlMs >= 1)) {
    throw new TypeError(`acquireLease: ttlMs must be an integer ≥ 1; received ${request.ttlMs}`);
  }
}

export function assertChannel(channel: unknown, operation: string): asserts channel is string {
  if (typeof channel !== 'string' || channel.length === 0) {
    throw new TypeError(`${operation}: channel must be a non-empty string`);
  }
}

export function assertMembers(
  members: unknown,
  operation: string,
): asserts members is readonly string[] {
  if (
    !Array.isArray(members) ||
    !members.every((member) => typeof member === 'string' && member.length > 0)
  ) {
    throw new TypeError(`${operation}: members must be an array of non-empty strings`);
  }
}

export function assertQuotaRequest(request: QuotaRequest): void {
  assertKey(request.ledger?.sizes, 'putWithQuota');
  assertKey(request.ledger?.expiries, 'putWithQuota');
  assertTtlSeconds(request.ttlSeconds, 'putWithQuota');
  for (const name of ['maxEntries', 'maxBytes'] as const) {
    const value = request[name];
    if (!(Number.isInteger(value) && value >= 1)) {
      throw new TypeError(`putWithQuota: ${name} must be an integer ≥ 1; received ${value}`);
    }
  }
}

export function assertAdmitRequest(request: AdmitRequest): void {
  assertKey(request.rate?.key, 'admit');
  assertKey(request.lease?.key, 'admit');
  assertGcraPolicy(request.rate.policy);
  assertLeaseRequest(request.lease);
  // One script touches both: in Redis Cluster they must share a slot, i.e. the tenant.
  if (hashTagOf(request.rate.key) !== hashTagOf(request.lease.key)) {
    throw new TypeError('admit: the rate and lease keys must share one hash tag (one tenant)');
  }
}
