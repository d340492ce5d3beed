--[[
  Keeps a running re-anchor's lock: resets its TTL if the caller still holds it.

  KEYS[1]  reanchor:<S>
  ARGV[1]  the caller's attempt token
  ARGV[2]  lock TTL, seconds

  Returns 1 renewed | 0 the lock is gone (swapped, expired) or held by another token
]]

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
