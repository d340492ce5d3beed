--[[
  Applies the newest bestBidAsk event of one processRecords batch of a symbol to ob:<SYMBOL>, idempotently, then
  refreshes the symbol's trade windows with the batch's event time. Only the newest event of a batch can matter,
  so the caller sends that one (src/state/book.ts). bestBidAsk is culled under load: gaps in its ids are normal.

  An event is applied only if its bookUpdateId is newer than bba_update_id (the last bestBidAsk applied). It then
  sets best_bid, best_bid_qty, best_ask, best_ask_qty, spread, mid_price, ts_us, best_update_id unless
  best_update_id (the id of the best bid/ask in ob:, which depth20 snapshots and the full book also set, from the
  same book update id sequence) is newer, or equal with a ts_us not older than this event's time (Book.best_newer:
  on a tie the later event time wins, whichever stream came first). The top-N levels and metrics are not touched.
  Ids are compared as decimal strings (includes/order-book.lua).

  KEYS[1]  ob:<S>
  KEYS[2]  tr:<S>:1s   KEYS[3] tr:<S>:5s   KEYS[4] tr:<S>:buckets   KEYS[5] tr:<S>:state   (trade windows)

  ARGV[1]  bookUpdateId of the batch's newest bestBidAsk ("" = none: only the windows are refreshed)
  ARGV[2]  bid price   ARGV[3] bid qty   ARGV[4] ask price   ARGV[5] ask qty   (canonical decimals: exactly 8
           fraction digits)
  ARGV[6]  its event time, us
  ARGV[7]  event time of the batch, us: the newest event time among its events ("" = none)

  Returns { applied, best_written }   each 1 or 0 (0 = older or duplicate / best bid/ask from a newer source)
  Errors: "BOOKARGS <what>" for malformed arguments, raised before any write.
]]

--@include trade-windows
--@include order-book

local ob_key = KEYS[1]
local id = ARGV[1]
local applied, best_written = 0, 0
if ARGV[7] ~= '' then Book.check_time(ARGV[7], 'batch event time') end

if id ~= '' then
  Book.check_id(id, 'bookUpdateId')
  Book.check_time(ARGV[6], 'event time')
  for i = 2, 5 do Book.check_decimal(ARGV[i], i % 2 == 0 and 'price' or 'qty') end
  local current = redis.call('HMGET', ob_key, 'bba_update_id', 'best_update_id', 'ts_us')
  if Book.newer(id, current[1] or '') then
    applied = 1
    local fields = { 'bba_update_id', id }
    if Book.best_newer(id, ARGV[6], current[2] or '', current[3] or '') then
      Book.best_fields(fields, ARGV[2], ARGV[3], ARGV[4], ARGV[5], id, ARGV[6])
      best_written = 1
    end
    redis.call('HSET', ob_key, unpack(fields))
  end
end

refresh_trade_windows(ob_key, KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[7])

return { applied, best_written }
