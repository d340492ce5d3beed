--[[
  Applies one processRecords batch of a symbol's depth stream (depth20 snapshots and depth diffs) to the full
  order book and to ob:<SYMBOL>, atomically and idempotently, then refreshes the symbol's trade windows with the
  batch's event time. Helpers and the diff encoding: includes/order-book.lua.

  Full book (Binance's rules; U = first, u = last book update id of a diff; ids compared as decimal strings):
    in sync:      u <= book id          -> ignored (old or redelivered; counted in the reply only, so that a
                                           redelivery leaves every key byte-identical)
                  U > book id + 1       -> gap: out_of_sync (reason gap), gaps + 1, this diff and the rest of the
                                           batch are buffered
                  else                  -> every level applied (qty 0 removes; removing an absent level is
                                           normal), book id = u
                  after the batch's applied diffs: best bid >= best ask -> crossed: out_of_sync (reason crossed),
                  crossed + 1 (checked once per batch, by its last call, on the book after its last applied diff;
                  a batch whose earlier call left it out of sync by a gap keeps reason gap)
    in sync, re-anchor running (KEYS[12] reanchor:<S> exists, checked once when the call starts in sync):
                  every diff applied (fast path and slow path alike) is ALSO appended to book:<S>:buffer, kept
                  for the swap (reanchor-swap-26.lua replays the diffs with u > its snapshot's lastUpdateId, so no
                  diff between the snapshot and the swap is lost); in u order, a diff that opens a gap and the rest
                  of the batch follow them as above. Ignored diffs (u <= book id, e.g. a redelivery) are not kept,
                  so nothing is kept twice. Same bound and overflow counting as below.
    in sync, no re-anchor (KEYS[12] absent) and a buffer left (state buffered > 0 or the list non-empty, e.g.
                  kept by an abandoned re-anchor): the buffer is deleted and buffered = 0 before anything is
                  appended, so an old attempt's diffs cannot leak into the next re-anchor (which would see a gap).
    out of sync (also before the first anchor: reason no_snapshot):
                  u > last_seen_u       -> appended to book:<S>:buffer (its encoded string), last_seen_u = u
                  else                  -> ignored (already buffered or applied)
                  the buffer keeps the newest ARGV[2] diffs; older ones are dropped and counted (buffer_overflow)
  ob:<S> levels (top N, metrics, book_update_id) come from the newer of: the full book after the batch (only when
  in sync) and the batch's newest depth20 snapshot (only if newer than the last depth20 applied), and only if
  newer than the levels already there; the full book wins a tie. Its level 1 becomes best bid/ask (with spread,
  mid, ts_us) only if newer than best_update_id (the id of the best bid/ask there, from any source), or equal with
  a later event time (Book.best_newer: the same book state from two streams gives the same ob: in any order).
  Arguments are checked before the first write (the net effect of the fast path is built by src/state/book.ts
  from the same diffs; its prices are checked by ZADD, the first write of each side). An unchanged state field
  is not rewritten, so a call that changes nothing writes nothing.

  KEYS[1]  ob:<S>                  live hash (contract fields, see includes/order-book.lua), no TTL
  KEYS[2]  book:<S>:bids           KEYS[3]  book:<S>:asks          hash: exact price -> exact qty
  KEYS[4]  book:<S>:bids:idx       KEYS[5]  book:<S>:asks:idx      zset: member exact price, score its value
  KEYS[6]  book:<S>:state          hash: status (in_sync | out_of_sync), reason ("" | no_snapshot | gap |
                                   crossed), book_update_id, last_seen_u, book_ts_us, buffered, gaps, crossed,
                                   buffer_overflow, gap_from (book id at the last gap), gap_to (the U received)
                                   [anchor-book-11 also writes anchors, anchor_update_id]
  KEYS[7]  book:<S>:buffer         list of encoded diffs kept while out of sync or a re-anchor runs (bounded)
  KEYS[8]  tr:<S>:1s   KEYS[9] tr:<S>:5s   KEYS[10] tr:<S>:buckets   KEYS[11] tr:<S>:state   (trade windows)
  KEYS[12] reanchor:<S>            the re-anchor flag (only its existence is read; never written here)

  ARGV[1]  N: levels written to ob: (processing.order_book_levels, 1..20)
  ARGV[2]  buffer bound (diffs), >= 1
  ARGV[3]  event time of the batch, us: the newest event time among its events ("" = none), for the windows; or
           "part": an intermediate call of a batch split in several (src/state/book.ts planDepthCalls): its diffs are
           applied or buffered and the book state written, but ob:<S>, the crossed check and the trade windows are
           left to the batch's last call (ARGV[4..6] must then be "")
  ARGV[4]  bookUpdateId of the batch's newest depth20 snapshot ("" = none)
  ARGV[5]  its event time, us
  ARGV[6]  its top N levels: "<nBids> <bidPrice> <bidQty> ... <askPrice> <askQty> ..." ("" = none)
  ARGV[7]  D: the number of diffs
  ARGV[8]  "full" form: the net effect, "" or "<nBidSet> <nBidDel> <nAskSet> <nAskDel>" when the diffs chain
           (each U <= previous u + 1): then the fast path below may be taken
           "net" form: "net <U> <u1> <u> <ts> <nBidSet> <nBidDel> <nAskSet> <nAskDel>": the chained diffs coalesced
           (U and u1 of the first, u and event time ts of the last, last write per level wins); no diff strings
  full form:
  ARGV[9 .. 8+D]  the diffs, one encoded string each, sorted by u strictly ascending
  ARGV[9+D ..]    with a net effect: nBidSet bid price, qty pairs (final non-zero quantities), nBidDel bid prices
                  (final quantity 0), nAskSet ask pairs, nAskDel ask prices, each in first-seen order over the diffs
  net form:
  ARGV[9 ..]      the net effect's values, laid out as above
  Fast path: when the book is in sync and the first diff bridges it (u > book id >= U - 1), every diff applies
  and the book receives exactly the net effect (the same writes, in the same order, as applying the diffs one by
  one, which the script does otherwise); no level needs parsing in Lua. A batch whose newest diff is not newer than
  the book id (in sync) or last_seen_u (out of sync), i.e. a redelivery, is ignored whole without parsing.
  The net form is applied ONLY by the fast path and only when no re-anchor keeps diffs (KEYS[12] absent); otherwise
  the script writes nothing and returns { -1 }: the caller sends the same chunk in the full form.
  Prices and quantities are canonical decimal strings (exactly 8 fraction digits, src/events/canonical.ts); the
  net values and the depth20 levels are checked before the first write, the levels of full-form diff strings when
  they are parsed (before the writes of the slow path).

  Returns { -1 } for a net-form call the fast path cannot take (nothing written), else
          { applied, ignored, buffered, gap, crossed, overflow, status, reason, book_update_id, buffer_length,
            levels_source, depth20_applied, best_written, kept }
    applied / ignored / buffered   diffs of this call applied to the book / ignored / appended to the buffer
                                   without being applied (applied + ignored + buffered = the diffs of the call)
    gap, crossed                   1 when this call detected a gap / a crossed book, else 0
    overflow                       buffered diffs dropped by the bound in this call
    status, reason, book_update_id, buffer_length   the book state after the call
    levels_source                  "book" | "depth20" | "" (ob: levels unchanged)
    depth20_applied, best_written  1 / 0
    kept                           applied diffs of this call also appended to the buffer (re-anchor running)
  Errors: "BOOKARGS <what>" for malformed arguments, raised before any write.
]]

--@include trade-windows
--@include order-book

local ob_key, bids_key, asks_key, bids_idx, asks_idx, state_key, buffer_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local flag_key = KEYS[12]

local n = tonumber(ARGV[1])
local buffer_max = tonumber(ARGV[2])
if not n or n < 1 or n > 20 or n % 1 ~= 0 then Book.bad_args('N must be an integer in 1..20: ' .. ARGV[1]) end
if not buffer_max or buffer_max < 1 or buffer_max % 1 ~= 0 then
  Book.bad_args('buffer bound must be a positive integer: ' .. ARGV[2])
end
local part = ARGV[3] == 'part'
local batch_time = part and '' or ARGV[3]
if batch_time ~= '' then Book.check_time(batch_time, 'batch event time') end
local d20_id = ARGV[4]
if part and (d20_id ~= '' or ARGV[6] ~= '') then Book.bad_args('an intermediate call carries no depth20') end
if d20_id ~= '' then
  Book.check_id(d20_id, 'depth20 bookUpdateId')
  Book.check_time(ARGV[5], 'depth20 event time')
end

local st = redis.call('HMGET', state_key, 'status', 'reason', 'book_update_id', 'last_seen_u', 'book_ts_us',
  'buffered', 'gaps', 'crossed', 'buffer_overflow', 'gap_from', 'gap_to')
local in_sync = st[1] == 'in_sync'
local reason = st[2] or 'no_snapshot'
if in_sync then reason = '' end
local book_id = st[3] or ''
local seen = st[4] or ''
local book_ts = st[5] or ''
local buffered = tonumber(st[6] or '0')
local gaps = tonumber(st[7] or '0')
local crossed = tonumber(st[8] or '0')
local overflow = tonumber(st[9] or '0')
local gap_from, gap_to = st[10] or '', st[11] or ''
if in_sync and book_id == '' then in_sync = false; reason = 'no_snapshot' end

-- The depth20 snapshot (its levels are parsed before any write).
local ob = part and {} or redis.call('HMGET', ob_key, 'book_update_id', 'best_update_id', 'depth20_update_id',
  'ts_us')
local levels_id, best_id, last_d20, best_ts = ob[1] or '', ob[2] or '', ob[3] or '', ob[4] or ''
local d20_applied = 0
local d20 = nil
if d20_id ~= '' and Book.newer(d20_id, last_d20) then
  d20_applied = 1
  local nb, pos = string.match(ARGV[6], '^(%d+) ?()')
  if not nb then Book.bad_args('malformed depth20 levels "' .. string.sub(ARGV[6], 1, 60) .. '"') end
  d20 = { { {}, {} }, { {}, {} } }
  Book.each_level(ARGV[6], pos, tonumber(nb), function(side, p, q)
    Book.check_decimal(p, 'depth20 price')
    Book.check_decimal(q, 'depth20 qty')
    local lv = d20[side]
    lv[1][#lv[1] + 1] = p
    lv[2][#lv[2] + 1] = q
  end)
end

local D = tonumber(ARGV[7])
if not D or D < 0 or D % 1 ~= 0 then Book.bad_args('bad diff count ' .. tostring(ARGV[7])) end
local net = nil
-- The net form: the coalesced diff's ids and time; its values start at ARGV[9] (full form: after the D diffs).
local net_form = string.sub(ARGV[8], 1, 4) == 'net '
local net_U, net_first_u, net_u, net_ts
local values_at = 9 + D
if net_form then
  local U, u1, u, ts, bs, bd, as, ad = string.match(ARGV[8],
    '^net (%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$')
  if not U or D == 0 then Book.bad_args('malformed net form "' .. string.sub(ARGV[8], 1, 80) .. '"') end
  Book.check_id(U, 'U'); Book.check_id(u1, 'u'); Book.check_id(u, 'u'); Book.check_time(ts, 'event time')
  if Book.newer(U, u1) or Book.newer(u1, u) then Book.bad_args('net form ids out of order "' .. ARGV[8] .. '"') end
  net_U, net_first_u, net_u, net_ts = U, u1, u, ts
  bs, bd, as, ad = tonumber(bs), tonumber(bd), tonumber(as), tonumber(ad)
  if 8 + 2 * bs + bd + 2 * as + ad ~= #ARGV then Book.bad_args('net effect counts do not match ARGV') end
  net = { bs, bd, as, ad }
  values_at = 9
elseif #ARGV < 8 + D then
  Book.bad_args('bad diff count ' .. tostring(ARGV[7]))
elseif ARGV[8] ~= '' then
  local bs, bd, as, ad = string.match(ARGV[8], '^(%d+) (%d+) (%d+) (%d+)$')
  if not bs or D == 0 then Book.bad_args('malformed net effect "' .. ARGV[8] .. '"') end
  bs, bd, as, ad = tonumber(bs), tonumber(bd), tonumber(as), tonumber(ad)
  if 8 + D + 2 * bs + bd + 2 * as + ad ~= #ARGV then Book.bad_args('net effect counts do not match ARGV') end
  net = { bs, bd, as, ad }
elseif #ARGV ~= 8 + D then
  Book.bad_args('expected ' .. D .. ' diffs, got ' .. (#ARGV - 8) .. ' arguments after ARGV[8]')
end
local applied, ignored, gap_now, crossed_now, overflow_now, kept = 0, 0, 0, 0, 0, 0
local pending = {}
local wrote_levels = false

local fast = false
if net and in_sync then
  local U, first_u = net_U, net_first_u
  if not net_form then U, first_u = Book.diff_header(ARGV[9]) end
  fast = Book.newer(first_u, book_id) and not Book.newer(U, Book.inc(book_id))
end
-- The net form carries no diff strings: only the fast path without a re-anchor's keeping can apply it.
if net_form and not fast then return { -1 } end

-- In sync: keep the applied diffs while a re-anchor runs, else drop a buffer left behind. One EXISTS answers both
-- (the flag is named twice, so it counts 2): 0 neither, 1 buffer only, 2 flag only, 3 both.
local keeping, clearing = false, false
if in_sync then
  local e = redis.call('EXISTS', flag_key, flag_key, buffer_key)
  keeping = e >= 2
  clearing = not keeping and (e == 1 or buffered > 0)
end

if net_form and keeping then return { -1 } end
-- Every net value is a canonical decimal (so no write below can fail half way through an event).
if net then Book.check_decimals(ARGV, values_at, #ARGV, 'net effect value') end

-- A batch whose newest diff was applied or buffered already (a redelivery) is ignored without parsing the rest.
local all_seen = false
if D > 0 and not fast then
  local _, last_u = Book.diff_header(ARGV[8 + D])
  all_seen = not Book.newer(last_u, in_sync and book_id or seen)
end

if all_seen then
  ignored = D
elseif fast then
  local u, ts = net_u, net_ts
  if not net_form then
    local _
    _, u, ts = Book.diff_header(ARGV[8 + D])
  end
  local i = values_at
  local bs, bd, as, ad = net[1], net[2], net[3], net[4]
  Book.write_side(bids_key, bids_idx, ARGV, i, i + 2 * bs - 1, ARGV, i + 2 * bs, i + 2 * bs + bd - 1)
  i = i + 2 * bs + bd
  Book.write_side(asks_key, asks_idx, ARGV, i, i + 2 * as - 1, ARGV, i + 2 * as, i + 2 * as + ad - 1)
  book_id, seen, book_ts = u, u, ts
  applied = D
  wrote_levels = true
  if keeping then
    for k = 9, 8 + D do pending[#pending + 1] = ARGV[k] end
    kept = D
  end
else
  -- Applied diffs go into an overlay (price -> final qty, first-seen order), written once after the loop.
  local overlay, order, set = Book.new_overlay()
  local prev_u = nil
  for i = 9, 8 + D do
    local s = ARGV[i]
    local U, u, ts, nb, pos = Book.diff_header(s)
    if prev_u and not Book.newer(u, prev_u) then
      Book.bad_args('diffs not sorted by u ascending at ARGV[' .. i .. ']')
    end
    prev_u = u
    if in_sync then
      if not Book.newer(u, book_id) then
        ignored = ignored + 1
      elseif Book.newer(U, Book.inc(book_id)) then
        in_sync = false
        reason = 'gap'
        gaps = gaps + 1
        gap_now = 1
        gap_from, gap_to = book_id, U
        pending[#pending + 1] = s
        seen = u
      else
        Book.each_level(s, pos, nb, set)
        book_id = u
        seen = u
        book_ts = ts
        applied = applied + 1
        if keeping then
          pending[#pending + 1] = s
          kept = kept + 1
        end
      end
    elseif Book.newer(u, seen) then
      pending[#pending + 1] = s
      seen = u
    else
      ignored = ignored + 1
    end
  end
  if applied > 0 then
    Book.flush_side(bids_key, bids_idx, order[1], overlay[1])
    Book.flush_side(asks_key, asks_idx, order[2], overlay[2])
    wrote_levels = true
  end
end
local appended = #pending

-- The crossed check of the full book (once per batch: by its last call, which also sees what the batch's earlier
-- calls applied), the buffer, the state.
local top = nil
if not part and (wrote_levels or in_sync) then
  local bp, bq = Book.read_top(bids_key, bids_idx, n, true)
  local ap, aq = Book.read_top(asks_key, asks_idx, n, false)
  top = { bp, bq, ap, aq }
  if Book.crossed(bp[1], ap[1]) then
    -- The first problem of the batch names the reason (the crossed book precedes a later gap).
    in_sync = false
    reason = 'crossed'
    crossed = crossed + 1
    crossed_now = 1
  end
end

if clearing then
  redis.call('DEL', buffer_key)
  buffered = 0
end
if appended > 0 then
  Book.chunked('RPUSH', buffer_key, pending, 1, appended, 500)
  local len = redis.call('LLEN', buffer_key)
  if len > buffer_max then
    overflow_now = len - buffer_max
    overflow = overflow + overflow_now
    redis.call('LTRIM', buffer_key, overflow_now, -1)
    len = buffer_max
  end
  buffered = len
end

local status = in_sync and 'in_sync' or 'out_of_sync'
local new_state = { status, reason, book_id, seen, book_ts, tostring(buffered), tostring(gaps), tostring(crossed),
  tostring(overflow), gap_from, gap_to }
local names = { 'status', 'reason', 'book_update_id', 'last_seen_u', 'book_ts_us', 'buffered', 'gaps', 'crossed',
  'buffer_overflow', 'gap_from', 'gap_to' }
local changed = {}
for i = 1, #names do
  if new_state[i] ~= (st[i] or '') then
    changed[#changed + 1] = names[i]
    changed[#changed + 1] = new_state[i]
  end
end
if #changed > 0 then redis.call('HSET', state_key, unpack(changed)) end

-- ob:<S> and the trade windows: by the batch's last call only.
local source, best_written = '', 0
if not part then
  local fields = {}
  if d20_applied == 1 then
    fields[1] = 'depth20_update_id'; fields[2] = d20_id
    fields[3] = 'depth20_ts_us'; fields[4] = ARGV[5]
  end
  local use_book = in_sync and Book.newer(book_id, levels_id)
  local use_d20 = d20_applied == 1 and Book.newer(d20_id, levels_id)
  if use_book and use_d20 then
    if Book.newer(d20_id, book_id) then use_book = false else use_d20 = false end
  end
  local lv, id, ts = nil, nil, nil
  if use_book then
    if not top then
      local bp, bq = Book.read_top(bids_key, bids_idx, n, true)
      local ap, aq = Book.read_top(asks_key, asks_idx, n, false)
      top = { bp, bq, ap, aq }
    end
    source, lv, id, ts = 'book', top, book_id, book_ts
  elseif use_d20 then
    source, lv, id, ts = 'depth20', { d20[1][1], d20[1][2], d20[2][1], d20[2][2] }, d20_id, ARGV[5]
  end
  if lv then
    Book.level_fields(fields, n, lv[1], lv[2], lv[3], lv[4], id, ts)
    if Book.best_newer(id, ts, best_id, best_ts) then
      Book.best_fields(fields, lv[1][1], lv[2][1], lv[3][1], lv[4][1], id, ts)
      best_written = 1
    end
  end
  if #fields > 0 then redis.call('HSET', ob_key, unpack(fields)) end
  if lv then Book.clear_levels_beyond(ob_key, n) end

  refresh_trade_windows(ob_key, KEYS[8], KEYS[9], KEYS[10], KEYS[11], batch_time)
end

return { applied, ignored, appended - kept, gap_now, crossed_now, overflow_now, status, reason, book_id, buffered,
  source, d20_applied, best_written, kept }
