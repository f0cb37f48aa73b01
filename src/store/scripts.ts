/**
 * Lua scripts run atomically by Redis. They read the clock with `TIME` inside the script, so
 * all replicas measure against the Redis server's clock rather than their own, and every key
 * a script touches is passed in `KEYS` and shares one hash tag, which keeps them valid in Redis
 * Cluster. Redis 7 replicates a script's effects, not the script, so calling `TIME` before
 * writing is allowed.
 */

/**
 * GCRA (see `gcra.ts` for the same arithmetic in TypeScript), as a Lua function the scripts
 * below share. Times are microseconds: Lua numbers are doubles and epoch µs (~1.7e15) stay
 * well inside 2^53. Returns { allowed 0|1, limit, remaining, resetUs, retryUs } with the two
 * durations as strings because Redis truncates Lua numbers to integers.
 */
const GCRA_FUNCTION = `
local function gcra(key, rate, burst, cost, now)
  local interval = 1000000 / rate
  local limit = burst + 1
  local tat = tonumber(redis.call('GET', key))
  if tat == nil or tat < now then tat = now end
  local newTat = tat + interval * cost
  local diff = now - (newTat - interval * limit)
  if diff < 0 then
    return {0, limit, 0, string.format('%.0f', tat - now), string.format('%.0f', -diff)}
  end
  local ttlMs = math.ceil((newTat - now) / 1000)
  if ttlMs < 1 then ttlMs = 1 end
  redis.call('SET', key, string.format('%.0f', newTat), 'PX', ttlMs)
  local remaining = math.floor(diff / interval + 1e-9)
  return {1, limit, remaining, string.format('%.0f', newTat - now), '0'}
end
`;

/**
 * Concurrency lease, as a Lua function: a sorted set of lease ids scored by expiry (ms). Drop
 * expired leases, count, add when below the limit. The key itself expires with its longest
 * lease, so an idle tenant leaves nothing behind. Returns { acquired 0|1, inFlight }.
 */
const LEASE_FUNCTION = `
local function lease(key, limit, ttl, id, nowMs)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', nowMs)
  local count = redis.call('ZCARD', key)
  if count >= limit then return {0, count} end
  redis.call('ZADD', key, nowMs + ttl, id)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  return {1, count + 1}
end
`;

const NOW_US = `
local t = redis.call('TIME')
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/** One GCRA check. ARGV: perSecond, burst, cost. Returns the GCRA reply above. */
export const GCRA_SCRIPT = `${GCRA_FUNCTION}${NOW_US}
return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), nowUs)
`;

/** One lease. ARGV: limit, ttlMs, leaseId. Returns { acquired 0|1, inFlight }. */
export const LEASE_SCRIPT = `${LEASE_FUNCTION}${NOW_US}
return lease(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], nowMs)
`;

/**
 * Admission in one round trip: the GCRA check on KEYS[1] and, only when it allows, the lease
 * on KEYS[2] (a refused request holds no slot; a request refused a slot keeps its rate charge,
 * as two separate calls would). Both keys share the tenant's hash tag.
 *
 * ARGV: perSecond, burst, cost, limit, ttlMs, leaseId, then any lease ids of KEYS[2] to give
 * back first (releases carried by this call: they are removed before the count, whatever the
 * rate decides). Returns the five GCRA fields, then { acquired 0|1|-1 (not tried), inFlight }.
 */
export const ADMIT_SCRIPT = `${GCRA_FUNCTION}${LEASE_FUNCTION}${NOW_US}
if #ARGV > 6 then redis.call('ZREM', KEYS[2], unpack(ARGV, 7)) end
local rate = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), nowUs)
if rate[1] == 0 then
  rate[6] = -1
  rate[7] = 0
  return rate
end
local held = lease(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], nowMs)
rate[6] = held[1]
rate[7] = held[2]
return rate
`;

/**
 * Quota'd write: a value stored under KEYS[1] only if the ledger (KEYS[2], a hash of entry
 * sizes plus `#entries` and `#bytes` totals; KEYS[3], a sorted set of entry expiries) stays
 * within its bounds. Expired entries leave the ledger first, so it counts what is live. An
 * entry's size is its key plus its value, in bytes. Writing a key the ledger holds renews it
 * (its size is replaced, not added). The ledger keys live as long as their newest entry.
 *
 * ARGV: value, ttlMs, maxEntries, maxBytes, dryRun (0|1).
 * Returns { accepted 0|1, exceeded ('' | 'entries' | 'bytes'), entries, bytes }.
 */
export const QUOTA_SCRIPT = `
local ttl = tonumber(ARGV[2])
local maxEntries = tonumber(ARGV[3])
local maxBytes = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, member in ipairs(expired) do
  local size = tonumber(redis.call('HGET', KEYS[2], member))
  if size then
    redis.call('HINCRBY', KEYS[2], '#bytes', -size)
    redis.call('HINCRBY', KEYS[2], '#entries', -1)
    redis.call('HDEL', KEYS[2], member)
  end
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
local entries = tonumber(redis.call('HGET', KEYS[2], '#entries') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[2], '#bytes') or '0')
local size = string.len(KEYS[1]) + string.len(ARGV[1])
local known = tonumber(redis.call('HGET', KEYS[2], KEYS[1]))
local addEntries = 1
local addBytes = size
if known then
  addEntries = 0
  addBytes = size - known
end
if entries + addEntries > maxEntries then
  return {0, 'entries', entries + addEntries, bytes + addBytes}
end
if bytes + addBytes > maxBytes then
  return {0, 'bytes', entries + addEntries, bytes + addBytes}
end
if ARGV[5] == '1' then return {1, '', entries + addEntries, bytes + addBytes} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('HSET', KEYS[2], KEYS[1], size)
redis.call('HINCRBY', KEYS[2], '#entries', addEntries)
redis.call('HINCRBY', KEYS[2], '#bytes', addBytes)
redis.call('ZADD', KEYS[3], now + ttl, KEYS[1])
for i = 2, 3 do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return {1, '', entries + addEntries, bytes + addBytes}
`;
