--[[
  Ends a re-drive's claim of one dead letter (lua/dlq-claim-2.lua). After Kinesis acknowledged the put, the letter
  is trimmed from the stream (XDEL); after a failed put it is kept. The claim is deleted only while it is still
  this re-drive's: one that expired and was taken by another re-drive is left to it.

  KEYS[1]  dlq:{<stream>}                          the dead-letter stream
  KEYS[2]  dlq:{<stream>}:redrive:<entry id>       the claim

  ARGV[1]  entry id of the letter
  ARGV[2]  token of this re-drive
  ARGV[3]  "1" trim the letter (its put was acknowledged), "0" keep it

  Returns  the number of entries trimmed (0 or 1)
]]

if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
end
if ARGV[3] == '1' then
  return redis.call('XDEL', KEYS[1], ARGV[1])
end
return 0
