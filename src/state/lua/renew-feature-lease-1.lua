--[[
  Acquires or renews the per-symbol lease of the feature writer: at most one sidecar of a fleet computes and
  writes a symbol's ticks. The holder renews it every tick; a holder that stops renewing loses it when it
  expires and the first sidecar to tick after that takes it over.

  KEYS[1]  feat:<SYMBOL>:lease      string: id of the holding sidecar, with a TTL

  ARGV[1]  sidecar id
  ARGV[2]  lease TTL, milliseconds

  Returns  2 when the caller held the lease and renewed it (TTL reset),
           1 when the lease was free and the caller acquired it (SET NX PX),
           0 when another sidecar holds it (nothing changed)
]]

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 2
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
