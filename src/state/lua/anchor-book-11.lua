--[[
  Anchors a symbol's full order book on a REST depth snapshot (GET /api/v3/depth, up to 5000 levels per side) and
  the diffs buffered while it was out of sync: Binance's procedure, steps 3 and 4 (includes/order-book.lua has the
  diff encoding; ids are compared as decimal strings). With L = the snapshot's lastUpdateId:

  1. In sync at book id >= L: nothing to do (code 0): anchoring is idempotent.
  2. Buffered diffs with u <= L are dropped. The first remaining one must satisfy U <= L + 1 (<= u holds already),
     and each following one U <= previous u + 1 (the buffer keeps only increasing u, but the bound may have dropped
     some and a gap may have been buffered). With no diff remaining, L must be >= last_seen_u (the newest diff
     already consumed, applied or buffered), else diffs the snapshot does not cover were lost.
  3. The book = the snapshot with the remaining diffs applied (qty 0 removes); it must not be crossed.
  4. Only then: the book keys are replaced, the buffer is cleared, the state becomes in_sync (book id = the last
     remaining u, or L), and ob:<S> gets the top N levels and metrics if newer than the levels there, and best
     bid/ask, spread and mid if newer than best_update_id. The trade windows are then refreshed without an event
     time (a REST snapshot does not advance the symbol's event time), so that vwap_minus_mid follows the new mid
     at once and a later call with nothing new writes nothing.
  A rejected snapshot (codes < 0) changes nothing at all: the live book state, the buffer and ob: stay as they
  were, so the caller can fetch another snapshot (the reply says which lastUpdateId would do).

  KEYS[1]  ob:<S>
  KEYS[2]  book:<S>:bids           KEYS[3]  book:<S>:asks
  KEYS[4]  book:<S>:bids:idx       KEYS[5]  book:<S>:asks:idx
  KEYS[6]  book:<S>:state          (fields: apply-depth-batch-12.lua; here also anchors, anchor_update_id)
  KEYS[7]  book:<S>:buffer
  KEYS[8]  tr:<S>:1s   KEYS[9] tr:<S>:5s   KEYS[10] tr:<S>:buckets   KEYS[11] tr:<S>:state   (trade windows)

  ARGV[1]  N: levels written to ob: (1..20)
  ARGV[2]  L: the snapshot's lastUpdateId
  ARGV[3]  the snapshot's time, us (when it was taken or received), below 2^53: book_ts_us / ts_us when no diff
           follows it
  ARGV[4]  number of bid levels B
  ARGV[5 .. 4 + 2B]  bid price, qty pairs (canonical decimals: exactly 8 fraction digits, src/events/canonical.ts),
                     then ask price, qty pairs to the end

  Returns { code, book_update_id, diffs_applied, diffs_dropped, needed_last_update_id }
     1  anchored: in_sync at book_update_id; diffs_applied buffered diffs replayed, diffs_dropped (u <= L) discarded
     0  no-op: already in sync at book_update_id >= L
    -1  snapshot too old: L + 1 < the first remaining buffered U, or L < last_seen_u with nothing buffered after L;
        needed_last_update_id = the smallest lastUpdateId that would bridge
    -2  the buffered diffs after the snapshot have a gap (a diff was lost or dropped by the bound);
        needed_last_update_id = the U after the gap - 1 (a snapshot at least that new)
    -3  the snapshot with the buffered diffs applied is crossed (best bid >= best ask): rejected
  Errors: "BOOKARGS <what>" for malformed arguments, raised before any write.
]]

--@include trade-windows
--@include order-book

local ob_key, bids_key, asks_key, bids_idx, asks_idx, state_key, buffer_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

local n = tonumber(ARGV[1])
if not n or n < 1 or n > 20 or n % 1 ~= 0 then Book.bad_args('N must be an integer in 1..20: ' .. ARGV[1]) end
local L = Book.check_id(ARGV[2], 'lastUpdateId')
local snapshot_ts = Book.check_time(ARGV[3], 'snapshot time')
local nb = tonumber(ARGV[4])
if not nb or nb < 0 or nb % 1 ~= 0 or 4 + 2 * nb > #ARGV or #ARGV % 2 ~= 0 then
  Book.bad_args('bad level counts: ' .. tostring(ARGV[4]) .. ' bid levels, ' .. (#ARGV - 4) .. ' level arguments')
end
Book.check_decimals(ARGV, 5, #ARGV, 'snapshot level value')

local st = redis.call('HMGET', state_key, 'status', 'book_update_id', 'last_seen_u', 'anchors')
local in_sync = st[1] == 'in_sync' and st[2]
if in_sync and not Book.newer(L, st[2]) then
  return { 0, st[2], 0, 0, '' }
end
local seen = st[3] or ''

-- 2. The buffered diffs after the snapshot, and whether they chain from it.
local remaining, dropped = Book.buffered_after(buffer_key, L)
if #remaining > 0 then
  local first = remaining[1]
  if Book.newer(first[2], Book.inc(L)) then return { -1, st[2] or '', 0, 0, Book.dec(first[2]) } end
  for i = 2, #remaining do
    if Book.newer(remaining[i][2], Book.inc(remaining[i - 1][3])) then
      return { -2, st[2] or '', 0, 0, Book.dec(remaining[i][2]) }
    end
  end
elseif not in_sync and seen ~= '' and Book.newer(seen, L) then
  return { -1, st[2] or '', 0, 0, seen }
end

-- 3. The new book in memory: price -> qty per side, in first-seen order (deterministic writes).
local qty, order, set = Book.new_overlay()
for i = 5, #ARGV, 2 do
  set(i <= 4 + 2 * nb and 1 or 2, ARGV[i], ARGV[i + 1])
end
local book_id, book_ts = L, snapshot_ts
for _, d in ipairs(remaining) do
  Book.each_level(d[1], d[6], d[5], set)
  book_id, book_ts = d[3], d[4]
end

local best_bid, best_ask = nil, nil
for _, p in ipairs(order[1]) do
  if not Book.is_zero(qty[1][p]) then
    local x = tonumber(p)
    if not best_bid or x > best_bid then best_bid = x end
  end
end
for _, p in ipairs(order[2]) do
  if not Book.is_zero(qty[2][p]) then
    local x = tonumber(p)
    if not best_ask or x < best_ask then best_ask = x end
  end
end
if best_bid and best_ask and best_bid >= best_ask then return { -3, st[2] or '', 0, 0, '' } end

-- 4. Writes.
redis.call('DEL', bids_key, asks_key, bids_idx, asks_idx, buffer_key)
Book.flush_side(bids_key, bids_idx, order[1], qty[1])
Book.flush_side(asks_key, asks_idx, order[2], qty[2])
redis.call('HSET', state_key,
  'status', 'in_sync', 'reason', '', 'book_update_id', book_id, 'last_seen_u', book_id, 'book_ts_us', book_ts,
  'buffered', '0', 'anchors', tostring(tonumber(st[4] or '0') + 1), 'anchor_update_id', L)

local ob = redis.call('HMGET', ob_key, 'book_update_id', 'best_update_id', 'ts_us')
if Book.newer(book_id, ob[1] or '') then
  local bp, bq = Book.read_top(bids_key, bids_idx, n, true)
  local ap, aq = Book.read_top(asks_key, asks_idx, n, false)
  local fields = {}
  Book.level_fields(fields, n, bp, bq, ap, aq, book_id, book_ts)
  if Book.best_newer(book_id, book_ts, ob[2] or '', ob[3] or '') then
    Book.best_fields(fields, bp[1], bq[1], ap[1], aq[1], book_id, book_ts)
  end
  redis.call('HSET', ob_key, unpack(fields))
  Book.clear_levels_beyond(ob_key, n)
end

refresh_trade_windows(ob_key, KEYS[8], KEYS[9], KEYS[10], KEYS[11], '')

return { 1, book_id, #remaining, dropped, '' }
