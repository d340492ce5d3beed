--[[
  Keeps a poison frame (undecodable, failing validation, or refused by its state script) in the stream's
  dead-letter stream exactly once. A redelivered frame finds its marker and is not added again.

  KEYS[1]  dlq:{<stream>}                                   dead-letter stream (capped, approximate MAXLEN)
  KEYS[2]  dlq:{<stream>}:seen:<shard>:<seq>:<subseq>:<frame>   marker of this frame
  KEYS[3]  dlq:{<stream>}:counts                            hash: error code -> count

  ARGV[1]  max stream length (approximate trim)
  ARGV[2]  marker TTL, seconds (longer than any redelivery window)
  ARGV[3]  error code
  ARGV[4..] field, value pairs of the entry (shard, sequence_number, sub_sequence_number, frame_index, error,
           data_base64, ...)

  Returns  1 when added, 0 when this frame was already dead-lettered
]]

if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  return 0
end
local entry = { 'error_code', ARGV[3] }
for i = 4, #ARGV do entry[#entry + 1] = ARGV[i] end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(entry))
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
return 1
