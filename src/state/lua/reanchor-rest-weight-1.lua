--[[
  The exchange's request-weight budget, shared by every REST client of the fleet (Binance counts it per IP):
  a sliding window of one minute in Redis' clock (TIME), src/reanchor/rest-gate.ts.

  KEYS[1]  reanchor:rest:weight   sorted set: member "<charge id>|<weight>", score = when it was charged (ms)
  ARGV[1]  the request's weight (a positive integer)
  ARGV[2]  the limit per minute (a positive integer)
  ARGV[3]  a charge id unique to the caller (no "|")

  Charges older than a minute are removed. When the weight fits (charged in the last minute + weight <= limit) it is
  charged and 0 returned; otherwise nothing is charged and the reply is the ms until it may fit (>= 1), or -1 when
  it never can (weight > limit). A retried call with the same charge id is charged once (ZADD on the same member).
  Errors: "BADARGS <what>" before any write.
]]

local WINDOW_MS = 60000
local weight = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local id = ARGV[3]
if not weight or weight < 1 or weight % 1 ~= 0 then return redis.error_reply('BADARGS weight ' .. tostring(ARGV[1])) end
if not limit or limit < 1 or limit % 1 ~= 0 then return redis.error_reply('BADARGS limit ' .. tostring(ARGV[2])) end
if not id or id == '' or string.find(id, '|', 1, true) then
  return redis.error_reply('BADARGS charge id ' .. tostring(id))
end
if weight > limit then return -1 end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - WINDOW_MS)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local used = 0
local member = id .. '|' .. weight
for i = 1, #entries, 2 do
  if entries[i] == member then return 0 end
  used = used + tonumber(string.match(entries[i], '|(%d+)$') or '0')
end
if used + weight <= limit then
  redis.call('ZADD', KEYS[1], now_ms, member)
  redis.call('PEXPIRE', KEYS[1], WINDOW_MS)
  return 0
end
for i = 1, #entries, 2 do
  used = used - tonumber(string.match(entries[i], '|(%d+)$') or '0')
  if used + weight <= limit then
    local wait = tonumber(entries[i + 1]) + WINDOW_MS - now_ms
    if wait < 1 then wait = 1 end
    return wait
  end
end
return 1
