/**
 * Lua scripts run atomically by Redis. Both read the clock with `TIME` inside the script, so
 * all replicas measure against the Redis server's clock rather than their own, and both touch
 * exactly one key (`KEYS[1]`), which keeps them valid in Redis Cluster. Redis 7 replicates a
 * script's effects, not the script, so calling `TIME` before writing is allowed.
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
