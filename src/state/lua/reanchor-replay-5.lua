--[[
  Re-anchoring, between the build and the swap: applies buffered depth diffs (copies of entries of the live
  book:<S>:buffer, those after the REST snapshot) to the symbol's TEMPORARY book, so that the swap
  (reanchor-swap-26.lua) replays only the diffs buffered after this step: however full the buffer, no single call
  holds Redis long. Touches no live key. src/reanchor/build.ts calls it in bounded chunks, in u order.

  KEYS[1]  book:new:<S>:bids   KEYS[2] book:new:<S>:asks   (hash price -> qty)
  KEYS[3]  book:new:<S>:bids:idx   KEYS[4] book:new:<S>:asks:idx   (zset)
  KEYS[5]  book:new:<S>:state  fields replayed_u (the u up to which the temporary book holds diffs; the snapshot's
           lastUpdateId before the first call) and replayed_ts_us (that diff's event time), bids, asks (level
           counts, kept equal to the hashes' lengths)

  ARGV[1]  the replayed_u this chunk continues from (a fence: a chunk applies only after the one before it)
  ARGV[2..] the diffs, encoded as the buffer's entries ("U u eventTimeUs nBids price qty ... "; canonical decimals),
            sorted by u, each U <= previous u + 1 (the first: U <= ARGV[1] + 1 <= its u)

  Returns { 1, replayed_u } applied (replayed_u = the last u), or { 0, replayed_u } when ARGV[1] is not the state's
  replayed_u (a repeated or out-of-order call: nothing written).
  Errors: "BOOKARGS <what>" for malformed arguments or diffs that do not chain, raised before any write.
]]

--@include order-book

local bids_key, asks_key, bids_idx, asks_idx, state_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local from = Book.check_id(ARGV[1] or '', 'replayed_u')
local st = redis.call('HMGET', state_key, 'replayed_u', 'bids', 'asks')
if st[1] ~= from then return { 0, st[1] or '' } end
if #ARGV < 2 then Book.bad_args('no diff to replay') end

-- Parse and check every diff before the first write.
local qty, order, set = Book.new_overlay()
local checked = function(side, p, q)
  Book.check_decimal(p, 'price')
  Book.check_decimal(q, 'qty')
  set(side, p, q)
end
local previous, previous_ts = from, ''
for i = 2, #ARGV do
  local U, u, ts, nb, pos = Book.diff_header(ARGV[i])
  if Book.newer(U, Book.inc(previous)) or not Book.newer(u, previous) then
    Book.bad_args('diff ' .. U .. '..' .. u .. ' does not continue ' .. previous)
  end
  Book.each_level(ARGV[i], pos, nb, checked)
  previous, previous_ts = u, ts
end

-- The writes, keeping the level counts equal to the hashes' lengths (the swap checks them).
local counts = { tonumber(st[2] or '0'), tonumber(st[3] or '0') }
for side, keys in ipairs({ { bids_key, bids_idx }, { asks_key, asks_idx } }) do
  counts[side] = counts[side] - redis.call('HLEN', keys[1])
  Book.flush_side(keys[1], keys[2], order[side], qty[side])
  counts[side] = counts[side] + redis.call('HLEN', keys[1])
end
redis.call('HSET', state_key, 'replayed_u', previous, 'replayed_ts_us', previous_ts, 'bids', tostring(counts[1]),
  'asks', tostring(counts[2]))
return { 1, previous }
