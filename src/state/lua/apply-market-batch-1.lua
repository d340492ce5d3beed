--[[
  Applies the reduced form of one processRecords batch to a symbol's live order-book hash, idempotently.
  The caller reduces the batch to the newest event of each kind (pure TypeScript, src/state/batch.ts);
  this script applies each part only if it is newer than what the hash already holds, so a Kinesis
  redelivery of any prefix of the stream leaves the hash unchanged.

  Ids are compared as decimal strings of non-negative int64s (Lua numbers are doubles: exact only to 2^53).

  KEYS[1]  ob:<SYMBOL>                      live order-book hash (no TTL)

  ARGV[1]  trade id of the newest trade      ("" = no trade in the batch)
  ARGV[2]  its price (exact decimal string)
  ARGV[3]  its trade time, microseconds
  ARGV[4]  bookUpdateId of the newest best bid/ask   ("" = none)
  ARGV[5]  best_bid   ARGV[6] best_bid_qty   ARGV[7] best_ask   ARGV[8] best_ask_qty
  ARGV[9]  spread (best_ask - best_bid, exact)
  ARGV[10] its event time, microseconds
  ARGV[11] bookUpdateId of the newest depth20 snapshot   ("" = none)
  ARGV[12] its event time, microseconds
  ARGV[13..] field, value pairs of the snapshot's levels (bid1_p, bid1_q, ..., ask1_p, ...)

  Returns  { trade_applied, bba_applied, depth_applied }   each 1 (applied) or 0 (duplicate/older)
]]

local key = KEYS[1]

-- a > b for decimal strings of non-negative integers without leading zeros; an absent b is smaller.
local function newer(a, b)
  if not b then return true end
  if #a ~= #b then return #a > #b end
  return a > b
end

local current = redis.call('HMGET', key, 'last_trade_id', 'bba_update_id', 'depth20_update_id')
local result = { 0, 0, 0 }

if ARGV[1] ~= '' and newer(ARGV[1], current[1] or nil) then
  redis.call('HSET', key, 'last_trade_id', ARGV[1], 'last_trade_price', ARGV[2], 'last_trade_ts_us', ARGV[3])
  result[1] = 1
end

if ARGV[4] ~= '' and newer(ARGV[4], current[2] or nil) then
  redis.call('HSET', key,
    'bba_update_id', ARGV[4],
    'best_bid', ARGV[5], 'best_bid_qty', ARGV[6],
    'best_ask', ARGV[7], 'best_ask_qty', ARGV[8],
    'spread', ARGV[9], 'ts_us', ARGV[10])
  result[2] = 1
end

if ARGV[11] ~= '' and newer(ARGV[11], current[3] or nil) then
  local fields = { 'depth20_update_id', ARGV[11], 'depth20_ts_us', ARGV[12] }
  for i = 13, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', key, unpack(fields))
  result[3] = 1
end

return result
