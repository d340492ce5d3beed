--[[
  Takes a symbol's re-anchor lock for one request, or coalesces the request into the re-anchor that holds it.
  One re-anchor per symbol runs at a time across the fleet; a request arriving while one runs is recorded in
  reanchor:<S>:pending (never lost): the holder reads it on release and queues one follow-up if the running
  re-anchor's snapshot may predate it (src/reanchor/listener.ts).

  KEYS[1]  reanchor:<S>           string: the holder's attempt token "<listener id>|<request id>", with a TTL
  KEYS[2]  reanchor:<S>:pending   hash: count (requests coalesced since the last release), latest_ms (newest
                                  request time), reason (of the newest), book_count and book_latest_ms (the same
                                  for the requests that need the book rebuilt: every reason but "trade_gap", which
                                  a trade repair alone settles; scopeOf in src/reanchor/requests.ts)
  KEYS[3]  reanchor:<S>:stats     hash of counters: this script writes started, takeovers, coalesced only (the
                                  rest is a run's, src/reanchor/stats.ts)

  ARGV[1]  attempt token "<listener id>|<request id>"
  ARGV[2]  lock TTL, seconds
  ARGV[3]  request id (the stream entry id)
  ARGV[4]  request time, ms
  ARGV[5]  request reason

  Returns { code, holder }
    1  acquired: the lock was free (SET NX EX)
    2  taken over: the lock belongs to the same request, whose listener died (its entry was claimed); the
       token is replaced, the TTL reset
    0  coalesced: another request's re-anchor holds it (holder = its token); recorded in pending
]]

local token, ttl, request_id, request_ms, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if not string.match(request_ms, '^%d+$') then return redis.error_reply('BADARGS request time ' .. request_ms) end

if redis.call('SET', KEYS[1], token, 'NX', 'EX', ttl) then
  redis.call('HINCRBY', KEYS[3], 'started', 1)
  return { 1, '' }
end
local holder = redis.call('GET', KEYS[1])
if holder and string.sub(holder, -(#request_id + 1)) == '|' .. request_id then
  redis.call('SET', KEYS[1], token, 'EX', ttl)
  redis.call('HINCRBY', KEYS[3], 'takeovers', 1)
  return { 2, holder }
end
local latest = tonumber(redis.call('HGET', KEYS[2], 'latest_ms') or '0')
if tonumber(request_ms) >= latest then
  redis.call('HSET', KEYS[2], 'latest_ms', request_ms, 'reason', reason)
end
redis.call('HINCRBY', KEYS[2], 'count', 1)
if reason ~= 'trade_gap' then
  local book_latest = tonumber(redis.call('HGET', KEYS[2], 'book_latest_ms') or '0')
  if tonumber(request_ms) >= book_latest then redis.call('HSET', KEYS[2], 'book_latest_ms', request_ms) end
  redis.call('HINCRBY', KEYS[2], 'book_count', 1)
end
redis.call('HINCRBY', KEYS[3], 'coalesced', 1)
return { 0, holder or '' }
