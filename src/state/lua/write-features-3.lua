--[[
  Serves one tick's feature vector of a symbol, conditionally and atomically:
  - only the current lease holder may write (so two sidecars at a lease hand-over never both write a tick);
  - only a tick newer than the served one and than the last one in the history is written (a late or
    retried write of an older or the same tick changes nothing);
  - feat:<SYMBOL> is replaced whole (DEL + HSET of every field + PEXPIRE) inside the script, so a reader's
    HGETALL sees the previous vector or the new one, never a mix or a partial hash;
  - the vector is appended to the history stream with the explicit entry id <tick>-0, so the stream's ids are
    the tick times, strictly increasing.

  KEYS[1]  feat:<SYMBOL>            hash: the served vector (field -> value)
  KEYS[2]  feat:<SYMBOL>:history    stream: every vector written, capped (approximate MAXLEN)
  KEYS[3]  feat:<SYMBOL>:lease      string: id of the lease holder

  ARGV[1]  sidecar id (must equal the lease value)
  ARGV[2]  tick time, ms since the epoch (integer; also the vector's feature_ts)
  ARGV[3]  TTL of feat:<SYMBOL>, milliseconds (120000)
  ARGV[4]  history max length (approximate trim)
  ARGV[5..] field, value pairs of the vector (at least one pair)

  Returns  1 when written,
          -1 when the caller does not hold the lease (nothing written),
          -2 when the tick is not newer than the served or the last recorded one (nothing written)
]]

if redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return -1
end
local tick = tonumber(ARGV[2])
local served = tonumber(redis.call('HGET', KEYS[1], 'feature_ts'))
if served and served >= tick then
  return -2
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if last[1] then
  local lastTick = tonumber(string.match(last[1][1], '^(%d+)-'))
  if lastTick and lastTick >= tick then
    return -2
  end
end

local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], ARGV[2] .. '-0', unpack(fields))
return 1
