--[[
  Re-anchoring, the ONE atomic step: swaps a symbol's temporary state (built from REST snapshots by
  src/reanchor/build.ts under the `new:` names, see Keys.temporary) in for the live state, or changes no live
  key at all. Every check is made before the first write (a MULTI would not roll back a failed RENAME), so a
  reader sees the old state or the new one, never a mix, and ob:<S> is only ever HSET (never deleted or renamed).

  Checks, in order (ids compared as decimal strings; L = the snapshot's lastUpdateId from book:new:<S>:state):
    ARGV[3] given and reanchor:<S> not holding it (the lock was taken over while this caller stalled, or it
      expired)                                      -> -7, nothing changed, the temporary keys left to the holder
    no temporary key exists at all                  -> 0, nothing changed (e.g. a second call after a swap)
    book:new:<S>:state missing or not complete      -> -1
    the temporary book does not hold the level counts the build recorded (a chunk lost or expired), or it holds
      buffered diffs (replayed_u) the buffer no longer has                                    -> -2
    L differs from ARGV[2] (another attempt's state) -> -3
    the snapshot does not bridge the live buffer (Binance's rule): buffered diffs with u <= L are dropped; the
      first remaining must have U <= L + 1 (<= u holds); with none remaining, L must be >= last_seen_u of
      book:<S>:state (the newest diff already applied or buffered)   -> -4 (needed_last_update_id says which L would)
      (when the build replayed buffered diffs, up to replayed_u, the same rules apply from replayed_u: the first
      remaining must have U <= replayed_u + 1, else -5)
    the remaining buffered diffs have a gap (U > previous u + 1)      -> -5 (needed_last_update_id likewise)
    the temporary book with the remaining diffs applied is crossed (best bid >= best ask) -> -6
  On a failed check (codes -1..-6) every temporary key (KEYS[15..26]) is deleted and no live key is touched
  (reanchor:<S> too is left as it is: the caller decides whether to retry).

  On success (code 1):
    1. the remaining buffered diffs are applied to the temporary book (qty 0 removes), except those the build already
       applied (up to book:new:<S>:state replayed_u, reanchor-replay-5.lua): so this call replays only the diffs
       buffered since the build, however full the buffer;
    2. book:new:<S>:bids/:asks/:bids:idx/:asks:idx are RENAMEd over the live ones (a side with no level: the live
       key is deleted) and PERSISTed (the temporary TTL does not follow them);
    3. book:<S>:state: in_sync, reason "", book_update_id = last_seen_u = the last remaining u (or L),
       book_ts_us, buffered 0, anchors + 1, anchor_update_id L, reanchors + 1 (counters kept); book:<S>:buffer
       is deleted;
    4. ob:<S>: top N levels, metrics, book_update_id and book_ts_us if the new book is newer than the levels
       there (a newer depth20 keeps its levels, as in anchor-book-11.lua); best bid/ask, spread, mid if newer than
       best_update_id;
    5. trade windows. Decision: the live trade state is kept when its last_trade_id >= the temporary one's (the
       stream has caught up with the REST trades; the stream's own state is the newer truth); otherwise the
       temporary tr:new:<S>:1s/:5s/:buckets/:state and px:new:<S> are RENAMEd over the live ones (the build
       seeds them with a copy of the live trade state and applies the REST trades on top, so they hold every
       trade the live state held plus the newer REST ones; ids deduplicate, so stream trades that arrive later
       with ids <= last_trade_id are skipped as duplicates), the live event time is carried over (max of both),
       and ob:<S> last_trade_price/_id/_ts_us are taken from ob:new:<S> when newer. Either way the windows are
       refreshed against the new mid (refresh_trade_windows, no new event time), tr:<S>:1s/:5s get TTL 300 s
       and tr:<S>:buckets/:state, px:<S> none;
    6. feat:new:<S>, when present, is RENAMEd over feat:<S> with TTL 120 s (else feat:<S> is left alone);
    7. every remaining temporary key and reanchor:<S> are deleted.

  KEYS[1]  ob:<S>              KEYS[2]  book:<S>:bids          KEYS[3]  book:<S>:asks
  KEYS[4]  book:<S>:bids:idx   KEYS[5]  book:<S>:asks:idx      KEYS[6]  book:<S>:state     KEYS[7]  book:<S>:buffer
  KEYS[8]  tr:<S>:1s           KEYS[9]  tr:<S>:5s              KEYS[10] tr:<S>:buckets     KEYS[11] tr:<S>:state
  KEYS[12] px:<S>              KEYS[13] feat:<S>               KEYS[14] reanchor:<S>
  KEYS[15] ob:new:<S>          KEYS[16] book:new:<S>:bids      KEYS[17] book:new:<S>:asks
  KEYS[18] book:new:<S>:bids:idx                               KEYS[19] book:new:<S>:asks:idx
  KEYS[20] book:new:<S>:state  (last_update_id, snapshot_ts_us, bids, asks = level counts, replayed_u and
           replayed_ts_us: the last buffered diff the build applied and its time, complete = "1")
  KEYS[21] tr:new:<S>:1s       KEYS[22] tr:new:<S>:5s          KEYS[23] tr:new:<S>:buckets KEYS[24] tr:new:<S>:state
  KEYS[25] px:new:<S>          KEYS[26] feat:new:<S>

  ARGV[1]  N: levels written to ob: (1..20)
  ARGV[2]  the lastUpdateId the caller built the temporary state from ("" = accept any)
  ARGV[3]  the caller's lock token, the value of reanchor:<S> while it holds the lock ("" = no check): a fence,
           so that a listener that stalled past a take-over cannot swap

  Returns { code, book_update_id, diffs_applied, diffs_dropped, trades, needed_last_update_id }
    code 1 swapped | 0 nothing to swap | -1 temporary state missing | -2 temporary book incomplete |
         -3 another attempt's state | -4 snapshot too old | -5 gap in the buffer after the snapshot | -6 crossed |
         -7 the lock is not the caller's
    book_update_id   the live book id after the call ("" if none)
    diffs_applied / diffs_dropped   buffered diffs replayed by this call / left behind (at or before L, or already
                                    applied by the build) (code 1)
    trades           "rest" (the temporary trade state was swapped in) | "live" (kept) | "" (code <= 0)
    needed_last_update_id   for -4 and -5: the smallest lastUpdateId that would bridge, else ""
  Errors: "BOOKARGS <what>" for malformed arguments, raised before any write.
]]

--@include trade-windows
--@include order-book

local ob_key, bids_key, asks_key, bids_idx, asks_idx, state_key, buffer_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local tr1_key, tr5_key, buckets_key, trstate_key, px_key, feat_key, flag_key =
  KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14]
local nob_key, nbids_key, nasks_key, nbids_idx, nasks_idx, nstate_key =
  KEYS[15], KEYS[16], KEYS[17], KEYS[18], KEYS[19], KEYS[20]
local ntr1_key, ntr5_key, nbuckets_key, ntrstate_key, npx_key, nfeat_key =
  KEYS[21], KEYS[22], KEYS[23], KEYS[24], KEYS[25], KEYS[26]

local TRADE_TTL, FEATURE_TTL = 300, 120

local n = tonumber(ARGV[1])
if not n or n < 1 or n > 20 or n % 1 ~= 0 then Book.bad_args('N must be an integer in 1..20: ' .. ARGV[1]) end
local expected = ARGV[2] or ''
if expected ~= '' then Book.check_id(expected, 'expected lastUpdateId') end

local function temporaries()
  local t = {}
  for i = 15, 26 do t[#t + 1] = KEYS[i] end
  return t
end

local token = ARGV[3] or ''

local st = redis.call('HMGET', state_key, 'status', 'book_update_id', 'last_seen_u', 'anchors', 'reanchors')
local live_id = st[2] or ''

if token ~= '' and redis.call('GET', flag_key) ~= token then return { -7, live_id, 0, 0, '', '' } end

local function reject(code, needed)
  redis.call('DEL', unpack(temporaries()))
  return { code, live_id, 0, 0, '', needed or '' }
end

if redis.call('EXISTS', unpack(temporaries())) == 0 then return { 0, live_id, 0, 0, '', '' } end

local ns = redis.call('HMGET', nstate_key, 'complete', 'last_update_id', 'snapshot_ts_us', 'bids', 'asks',
  'replayed_u', 'replayed_ts_us')
if ns[1] ~= '1' or not ns[2] or not ns[3] then return reject(-1) end
local L = Book.check_id(ns[2], 'temporary last_update_id')
-- Buffered diffs up to replayed_u are in the temporary book already (reanchor-replay-5.lua, called by the build).
local replayed = ns[6] or L
Book.check_id(replayed, 'temporary replayed_u')
local snapshot_ts = Book.check_id(ns[3], 'temporary snapshot_ts_us')
local nb_count, na_count = tonumber(ns[4] or ''), tonumber(ns[5] or '')
if nb_count == nil or na_count == nil
  or redis.call('HLEN', nbids_key) ~= nb_count or redis.call('ZCARD', nbids_idx) ~= nb_count
  or redis.call('HLEN', nasks_key) ~= na_count or redis.call('ZCARD', nasks_idx) ~= na_count then
  return reject(-2)
end
if expected ~= '' and expected ~= L then return reject(-3) end

-- The buffered diffs after the temporary book's position (the snapshot's L, or the last diff the build replayed),
-- read from the buffer's tail, and whether they chain from it: Binance's rule when nothing was replayed (the build
-- checked it for what it replayed), continuity after the replayed ones otherwise.
local remaining, dropped = Book.buffered_after(buffer_key, replayed)
local seen = st[3] or ''
if #remaining > 0 then
  if Book.newer(remaining[1][2], Book.inc(replayed)) then
    return reject(replayed == L and -4 or -5, Book.dec(remaining[1][2]))
  end
  for i = 2, #remaining do
    if Book.newer(remaining[i][2], Book.inc(remaining[i - 1][3])) then
      return reject(-5, Book.dec(remaining[i][2]))
    end
  end
elseif seen ~= '' and Book.newer(seen, replayed) then
  return reject(-4, seen)
end

-- The remaining diffs, as an overlay (price -> final qty, first-seen order), parsed before any write.
local qty, order, set = Book.new_overlay()
local book_id, book_ts = replayed, ns[7] or snapshot_ts
for _, d in ipairs(remaining) do
  Book.each_level(d[1], d[6], d[5], set)
  book_id, book_ts = d[3], d[4]
end

-- Best of one side after the overlay: the best overlay price with a non-zero qty, or the best stored price the
-- overlay does not remove (among the top (#removed + 1) stored ones, one survives if the side has that many).
local function best(side, levels_key, index_key, descending)
  local b = nil
  local removed = 0
  for _, p in ipairs(order[side]) do
    if Book.is_zero(qty[side][p]) then
      removed = removed + 1
    else
      local x = tonumber(p)
      if not b or (descending and x > b) or (not descending and x < b) then b = x end
    end
  end
  local stored = redis.call(descending and 'ZREVRANGE' or 'ZRANGE', index_key, 0, removed)
  for _, p in ipairs(stored) do
    local o = qty[side][p]
    if o == nil or not Book.is_zero(o) then
      local x = tonumber(p)
      if not b or (descending and x > b) or (not descending and x < b) then b = x end
      break
    end
  end
  return b
end
local best_bid = best(1, nbids_key, nbids_idx, true)
local best_ask = best(2, nasks_key, nasks_idx, false)
if best_bid and best_ask and best_bid >= best_ask then return reject(-6) end

-- Every check passed: the writes.
-- 1-2. The new full book.
Book.flush_side(nbids_key, nbids_idx, order[1], qty[1])
Book.flush_side(nasks_key, nasks_idx, order[2], qty[2])
-- UNLINK before RENAME: the old live value (5000 levels per side) is freed by a background thread instead of
-- inside this script, which every live write waits behind (RENAME over a key frees it synchronously).
local function swap_in(from, to, ttl)
  if redis.call('EXISTS', from) == 1 then
    redis.call('UNLINK', to)
    redis.call('RENAME', from, to)
    if ttl then redis.call('EXPIRE', to, ttl) else redis.call('PERSIST', to) end
    return true
  end
  redis.call('UNLINK', to)
  return false
end
swap_in(nbids_key, bids_key)
swap_in(nasks_key, asks_key)
swap_in(nbids_idx, bids_idx)
swap_in(nasks_idx, asks_idx)

-- 3. Book state and buffer.
redis.call('HSET', state_key,
  'status', 'in_sync', 'reason', '', 'book_update_id', book_id, 'last_seen_u', book_id, 'book_ts_us', book_ts,
  'buffered', '0', 'anchors', tostring(tonumber(st[4] or '0') + 1), 'anchor_update_id', L,
  'reanchors', tostring(tonumber(st[5] or '0') + 1))
redis.call('UNLINK', buffer_key)

-- 4. ob:<S>.
local ob = redis.call('HMGET', ob_key, 'book_update_id', 'best_update_id', 'last_trade_id', 'ts_us')
local fields = {}
if Book.newer(book_id, ob[1] or '') then
  local bp, bq = Book.read_top(bids_key, bids_idx, n, true)
  local ap, aq = Book.read_top(asks_key, asks_idx, n, false)
  Book.level_fields(fields, n, bp, bq, ap, aq, book_id, book_ts)
  if Book.best_newer(book_id, book_ts, ob[2] or '', ob[4] or '') then
    Book.best_fields(fields, bp[1], bq[1], ap[1], aq[1], book_id, book_ts)
  end
end

-- 5. Trade windows.
local live_tr = redis.call('HMGET', trstate_key, 'last_trade_id', 'event_time_us')
local new_last = redis.call('HGET', ntrstate_key, 'last_trade_id') or ''
local trades = 'live'
if new_last ~= '' and Book.newer(new_last, live_tr[1] or '') then
  trades = 'rest'
  swap_in(ntr1_key, tr1_key, TRADE_TTL)
  swap_in(ntr5_key, tr5_key, TRADE_TTL)
  swap_in(nbuckets_key, buckets_key)
  swap_in(ntrstate_key, trstate_key)
  swap_in(npx_key, px_key)
  local last_trade = redis.call('HMGET', nob_key, 'last_trade_price', 'last_trade_id', 'last_trade_ts_us')
  if last_trade[1] and last_trade[2] and last_trade[3] and Book.newer(last_trade[2], ob[3] or '') then
    local k = #fields
    fields[k + 1] = 'last_trade_price'; fields[k + 2] = last_trade[1]
    fields[k + 3] = 'last_trade_id'; fields[k + 4] = last_trade[2]
    fields[k + 5] = 'last_trade_ts_us'; fields[k + 6] = last_trade[3]
  end
end
if #fields > 0 then redis.call('HSET', ob_key, unpack(fields)) end
Book.clear_levels_beyond(ob_key, n)
refresh_trade_windows(ob_key, tr1_key, tr5_key, buckets_key, trstate_key,
  trades == 'rest' and (live_tr[2] or '') or '')
if redis.call('EXISTS', tr1_key) == 1 then redis.call('EXPIRE', tr1_key, TRADE_TTL) end
if redis.call('EXISTS', tr5_key) == 1 then redis.call('EXPIRE', tr5_key, TRADE_TTL) end

-- 6. Features.
if redis.call('EXISTS', nfeat_key) == 1 then
  redis.call('RENAME', nfeat_key, feat_key)
  redis.call('EXPIRE', feat_key, FEATURE_TTL)
end

-- 7. Clean-up.
redis.call('DEL', flag_key, unpack(temporaries()))

return { 1, book_id, #remaining, dropped, trades, '' }
