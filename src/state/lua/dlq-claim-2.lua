--[[
  Claims one dead letter for a re-drive (`aggregator dlq redrive`) before its bytes are put back on Kinesis, so
  two operators re-driving the same letters at once never put one letter twice: the letter must still be in the
  stream and no other re-drive may hold it. The claim expires by itself, so a re-drive that died leaves nothing.

  KEYS[1]  dlq:{<stream>}                          the dead-letter stream
  KEYS[2]  dlq:{<stream>}:redrive:<entry id>       the claim (string: the re-drive's token, TTL ARGV[3])

  ARGV[1]  entry id of the letter
  ARGV[2]  token of this re-drive (unique per run)
  ARGV[3]  claim TTL, seconds

  Returns  1 claimed (or already held by this token), 0 the letter is no longer in the stream (re-driven by someone
           else, or trimmed), -1 another re-drive holds it
]]

if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then
  return 0
end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[2] then
  return -1
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
