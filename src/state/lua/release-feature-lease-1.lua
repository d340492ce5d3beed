--[[
  Gives up the per-symbol feature-writer lease on a clean stop, so another sidecar takes the symbol over at
  its next tick instead of after the TTL. Only the holder may release it.

  KEYS[1]  feat:<SYMBOL>:lease      string: id of the holding sidecar

  ARGV[1]  sidecar id

  Returns  1 when released, 0 when the caller did not hold it (nothing changed)
]]

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
