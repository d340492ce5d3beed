--[[
  Seeds a re-anchor's temporary trade state with a copy of the live one, in ONE step (src/reanchor/build.ts): the
  five keys are copied together, so a stream batch applied meanwhile lands either before the copy (in all five) or
  after it (in none). Copied one by one, a batch landing between the copies of the buckets and of the state was in
  last_trade_id but not in the buckets or px:, and after the swap the stream's own delivery of those trades was
  skipped as duplicates: lost from the windows.

  KEYS[1]  tr:<S>:1s        KEYS[2]  tr:<S>:5s        KEYS[3]  tr:<S>:buckets   KEYS[4]  tr:<S>:state
  KEYS[5]  px:<S>
  KEYS[6]  tr:new:<S>:1s    KEYS[7]  tr:new:<S>:5s    KEYS[8]  tr:new:<S>:buckets
  KEYS[9]  tr:new:<S>:state KEYS[10] px:new:<S>
  (all of one symbol: one hash slot in cluster mode, src/state/keys.ts)
  ARGV[1]  TTL of the copies, seconds (a positive integer): an abandoned attempt cleans up

  Each KEYS[i + 5] becomes a copy of KEYS[i] (COPY ... REPLACE: type, content; the TTL is set to ARGV[1]); a live
  key that does not exist leaves its copy absent. Deterministic and idempotent: calling it again copies again.
  Returns { copied, last_trade_id }: the number of live keys copied, and the copied tr:<S>:state last_trade_id
  ("" when there is none).
  Errors: "BADARGS <what>" before any write.
]]

local ttl = tonumber(ARGV[1])
if not ttl or ttl < 1 or ttl % 1 ~= 0 then
  return redis.error_reply('BADARGS the TTL must be a positive integer: ' .. tostring(ARGV[1]))
end
local copied = 0
for i = 1, 5 do
  local to = KEYS[i + 5]
  redis.call('DEL', to)
  if redis.call('COPY', KEYS[i], to) == 1 then
    redis.call('EXPIRE', to, ttl)
    copied = copied + 1
  end
end
return { copied, redis.call('HGET', KEYS[9], 'last_trade_id') or '' }
