--[[
  Records that the exchange asked the fleet to stop calling its REST API until a time (a 429 or 418 answer with
  Retry-After): src/reanchor/rest-gate.ts. Binance bans per IP and answers requests made during a ban with longer
  bans, so every listener of the fleet reads this before each request (src/rest/client.ts fails fast until then).

  KEYS[1]  reanchor:rest:ban   hash: until_ms (ms since the epoch), status (the HTTP status), set_ms (Redis TIME)
  ARGV[1]  until_ms: the end of the ban, ms since the epoch (decimal, below 2^53)
  ARGV[2]  the HTTP status that set it (decimal)

  A later end replaces an earlier one, never the reverse, so concurrent answers keep the longest ban; the key
  expires when the ban ends (by Redis' clock; an end already past by it records nothing). Idempotent: the same
  call again changes nothing.
  Returns 1 when the ban was recorded or extended, 0 when a ban at least as long was there (or it is over).
  Errors: "BADARGS <what>" before any write.
]]

local until_ms = ARGV[1]
local status = ARGV[2]
if not string.match(until_ms or '', '^%d+$') or #until_ms > 16 then
  return redis.error_reply('BADARGS until_ms is not a decimal time in ms: ' .. tostring(until_ms))
end
if not string.match(status or '', '^%d+$') or #status > 3 then
  return redis.error_reply('BADARGS status is not an HTTP status: ' .. tostring(status))
end
local current = tonumber(redis.call('HGET', KEYS[1], 'until_ms') or '0')
if tonumber(until_ms) <= current then return 0 end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if tonumber(until_ms) <= now_ms then return 0 end
redis.call('HSET', KEYS[1], 'until_ms', until_ms, 'status', status, 'set_ms', tostring(now_ms))
redis.call('PEXPIRE', KEYS[1], tonumber(until_ms) - now_ms)
return 1
