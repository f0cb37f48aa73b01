/**
 * Lua scripts run atomically by Redis. They read the clock with `TIME` inside the script, so
 * all replicas measure against the Redis server's clock rather than their own, and every key
 * a script touches is passed in `KEYS` and shares one hash tag, which keeps them valid in Redis
 * Cluster. Redis 7 replicates a script's effects, not the script, so calling `TIME` before
 * writing is allowed.
 */

/**
 * GCRA (see `gcra.ts` for the same arithmetic in TypeScript). Times are microseconds: Lua
 * numbers are doubles and epoch µs (~1.7e15) stay well inside 2^53.
 *
 * ARGV: perSecond, burst, cost. Returns { allowed 0|1, limit, remaining, resetUs, retryUs }
 * with the two durations as strings because Redis truncates Lua numbers to integers.
 */
export const GCRA_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = 1000000 / rate
local limit = burst + 1
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local newTat = tat + interval * cost
local diff = now - (newTat - interval * limit)
if diff < 0 then
  return {0, limit, 0, string.format('%.0f', tat - now), string.format('%.0f', -diff)}
end
local ttlMs = math.ceil((newTat - now) / 1000)
if ttlMs < 1 then ttlMs = 1 end
redis.call('SET', KEYS[1], string.format('%.0f', newTat), 'PX', ttlMs)
local remaining = math.floor(diff / interval + 1e-9)
return {1, limit, remaining, string.format('%.0f', newTat - now), '0'}
`;

/**
 * Concurrency lease: a sorted set of lease ids scored by expiry (ms). Drop expired leases,
 * count, add when below the limit. The key itself expires with its longest lease, so an idle
 * tenant leaves nothing behind.
 *
 * ARGV: limit, ttlMs, leaseId. Returns { acquired 0|1, inFlight }.
 */
export const LEASE_SCRIPT = `
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then return {0, count} end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return {1, count + 1}
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
