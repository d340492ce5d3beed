--[[
  Ends a re-anchor: deletes the lock if the caller still holds it (the swap deletes it on success; a lock taken
  over by another listener is left alone) and hands the caller the requests coalesced meanwhile, clearing them.
  Atomic with reanchor-acquire-3.lua, so a request is either seen here or finds the lock free: never neither.

  KEYS[1]  reanchor:<S>           KEYS[2]  reanchor:<S>:pending
  ARGV[1]  the caller's attempt token

  Returns { released, pending_count, pending_latest_ms, pending_reason, book_count, book_latest_ms }
    released  1 the caller's lock was deleted here, 0 it was gone already or held by another token
    book_count, book_latest_ms: of the coalesced requests that need the book rebuilt (reanchor-acquire-3.lua)
]]

local released = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  released = 1
end
local p = redis.call('HMGET', KEYS[2], 'count', 'latest_ms', 'reason', 'book_count', 'book_latest_ms')
redis.call('DEL', KEYS[2])
return { released, tonumber(p[1] or '0'), p[2] or '', p[3] or '', tonumber(p[4] or '0'), p[5] or '' }
