--[[
  Repairs a symbol's trade state from REST trades (GET /api/v3/trades; repairTradeGaps in src/state/trades.ts): each open
  trade-id gap (tr:<S>:state open_gaps, opened by apply-trade-batch-6.lua) is either filled, so that every key ends
  exactly as if the stream had applied the missing trades in id order, or declared unrepairable. One atomic call:
  the live last_trade_id L is read here, so stream batches before or after it are both accounted for. Writes only
  the six keys below; the book is not touched.

  KEYS: those of apply-trade-batch-6.lua (ob:<S> (read: mid_price), tr:<S>:1s, tr:<S>:5s, tr:<S>:buckets,
        tr:<S>:state, px:<S>); the same script repairs a re-anchor's temporary copy when given its keys.
  ARGV: the REST trades, 5 fields each as in apply-trade-batch-6.lua (id, time us, price, qty, isBuyerMaker),
        ids consecutive and ascending (each the previous + 1): a..b. Times must be the trades' transactTimes (the
        stream's trade time). At least one trade.

  With B the bucket of the event time T (the 5 s window: buckets B-49..B), Q the bucket of px_time_us (the price
  history: buckets above Q-150) and bucket(x) the 100 ms bucket of trade x's time, each open gap [f, g], oldest
  first, is:
    before_rest    f < a: the exchange's recent trades no longer reach back to it (too old, or too many trades
                   since): unrepairable
    after_rest     g > b: the REST answer predates the gap; it stays open (a later answer may cover it)
    not_whole      a bucket holding one of its trades is in the 5 s window but the REST trades do not hold that
                   bucket whole up to L (bucket(a) >= it, or b < L with bucket(b) = it), or is in the price history
                   but its last trade up to L is unknown (b < L with bucket(b) = it), or the bucket also holds
                   trades of a gap that is not repaired now: a bucket aggregate (Welford, id order) can only be
                   rebuilt exactly from all of its trades; or a missing trade is dated in a bucket after that of the
                   newest trade applied (px_time_us: trade times do not decrease with ids, so the answer contradicts
                   the stream): unrepairable
    repaired       otherwise
  Repair: each window bucket holding a repaired trade is rebuilt from the REST trades of that bucket with ids <= L,
  in id order (the aggregate the stream would have built); each price-history bucket holding one gets the price of
  the REST trade with the highest id <= L in it (px_min_us lowered if needed); trades older than both only count.
  The windows are then recomputed (the refresh of includes/trade-windows.lua, forced). tr:<S>:state: trades_applied
  + the trades filled, gap_count and gap_missing - the repaired gaps and their trades (they count the gaps still
  missing, open or unrepairable), gaps_repaired + 1 and trades_repaired + size per gap.
  Unrepairable: it leaves open_gaps; gaps_unrepairable + 1, trades_unrepairable + its size, last_unrepairable_from
  and _to; gap_count and gap_missing keep counting it.
  Idempotent: a repaired or unrepairable gap is no longer open, so a second call changes nothing. Deterministic.

  Returns { repaired_gaps, repaired_trades, unrepairable_gaps, unrepairable_trades, open_gaps_left,
            from1, to1, outcome1, from2, to2, outcome2, ... }   (the gaps examined, outcome as above; counts of
  trades as decimal strings)
  Errors: "ERR_TRADE_ARGS ..." (as apply-trade-batch-6.lua, and when the ids are not consecutive), before any write.
]]

--@include trade-args
--@include trade-gaps
--@include trade-windows

local ob_key, tr1_key, tr5_key, buckets_key, state_key, px_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local PX_BUCKETS = 150
local N5 = TradeWindows.N5
local bucket_of, field_of = TradeWindows.bucket_of, TradeWindows.field_of
local dec_gt, dec_add1, dec_add, dec_sub = TradeArgs.dec_gt, TradeArgs.dec_add1, TradeArgs.dec_add, TradeArgs.dec_sub
local fmt = string.format

local nargs = #ARGV
if nargs < 5 or nargs % 5 ~= 0 then
  return redis.error_reply('ERR_TRADE_ARGS expected 5 x trades arguments (at least one trade), got ' .. nargs)
end

-- Every trade is checked before the first write.
local ids, ts, ps, qs, ms, prices = {}, {}, {}, {}, {}, {}
for base = 1, nargs, 5 do
  local id, t, p, q, buyer_maker = TradeArgs.check(ARGV, base)
  if not id then return redis.error_reply(t) end
  local k = #ids + 1
  if k > 1 and id ~= dec_add1(ids[k - 1]) then
    return redis.error_reply('ERR_TRADE_ARGS REST trade ids must be consecutive: ' .. ids[k - 1] .. ' then ' .. id)
  end
  ids[k], ts[k], ps[k], qs[k], ms[k], prices[k] = id, t, p, q, buyer_maker, ARGV[base + 2]
end
local n = #ids
local a, b = ids[1], ids[n]

local st = TradeWindows.read_state(state_key)
local open = TradeGaps.parse(st.open_gaps)
if #open == 0 or st.last_trade_id == nil or st.t == nil then return { 0, '0', 0, '0', #open } end
local L = st.last_trade_id

-- Index in the REST answer of an id within a..b (ids are consecutive: id - a + 1).
local function index_of(id)
  return tonumber(dec_sub(id, a)) + 1
end
-- The REST trades known to the live state: ids <= L.
local known = n
if dec_gt(b, L) then known = dec_gt(a, L) and 0 or index_of(L) end

local bT = bucket_of(st.t)
local lo = bT - N5 + 1
local px_lo = st.px_t and (bucket_of(st.px_t) - PX_BUCKETS + 1) or nil
local first_bucket = bucket_of(ts[1])
local newest_bucket = st.px_t and bucket_of(st.px_t) or nil
local last_known_bucket = known > 0 and bucket_of(ts[known]) or nil
local reaches_l = known == n and not dec_gt(L, b) -- REST holds every trade up to L

-- Pass 1: classify each gap on its own; buckets[g] lists the buckets its trades fall in.
local outcome, gap_buckets = {}, {}
for i, g in ipairs(open) do
  local f, to = g[1], g[2]
  if dec_gt(a, f) then
    outcome[i] = 'before_rest'
  elseif dec_gt(to, b) then
    outcome[i] = 'after_rest'
  else
    outcome[i] = 'repaired'
    local seen, list = {}, {}
    for k = index_of(f), index_of(to) do
      local x = bucket_of(ts[k])
      if not seen[x] then
        seen[x] = true
        list[#list + 1] = x
        local in_window = x >= lo
        local in_px = px_lo ~= nil and x >= px_lo
        local last_known = reaches_l or (last_known_bucket ~= nil and last_known_bucket > x)
        -- A missing trade dated after the newest trade the stream applied contradicts the stream (trade times do
        -- not decrease with ids): nothing of it is written.
        local from_future = newest_bucket == nil or x > newest_bucket
        if from_future or (in_window and (first_bucket >= x or not last_known)) or (in_px and not last_known) then
          outcome[i] = 'not_whole'
        end
      end
    end
    gap_buckets[i] = list
  end
end

-- Pass 2: a rebuilt bucket holds every REST trade of it up to L, so every open gap with trades in it must be
-- repaired now: a repaired gap sharing a bucket with the trades (held by the REST answer) of a gap that is not
-- becomes not_whole too. Repeated until nothing changes (at most #open rounds).
local changed = true
while changed do
  changed = false
  local blocked = {}
  for i, g in ipairs(open) do
    if outcome[i] ~= 'repaired' then
      local from = dec_gt(a, g[1]) and a or g[1]
      local to = dec_gt(g[2], b) and b or g[2]
      if not dec_gt(from, to) then
        for k = index_of(from), index_of(to) do blocked[bucket_of(ts[k])] = true end
      end
    end
  end
  for i in ipairs(open) do
    if outcome[i] == 'repaired' then
      for _, x in ipairs(gap_buckets[i]) do
        if blocked[x] then
          outcome[i] = 'not_whole'
          changed = true
          break
        end
      end
    end
  end
end

-- Pass 3: the writes.
local repaired_gaps, repaired_trades, bad_gaps, bad_trades = 0, '0', 0, '0'
local last_bad = nil
local keep, window_buckets, px_buckets = {}, {}, {}
local result = {}
for i, g in ipairs(open) do
  local o = outcome[i]
  result[#result + 1] = g[1]
  result[#result + 1] = g[2]
  result[#result + 1] = o
  if o == 'repaired' then
    repaired_gaps = repaired_gaps + 1
    repaired_trades = dec_add(repaired_trades, TradeGaps.size(g))
    for _, x in ipairs(gap_buckets[i]) do
      if x >= lo then window_buckets[x] = true end
      if px_lo ~= nil and x >= px_lo then px_buckets[x] = true end
    end
  elseif o == 'after_rest' then
    keep[#keep + 1] = g
  else
    bad_gaps = bad_gaps + 1
    bad_trades = dec_add(bad_trades, TradeGaps.size(g))
    last_bad = g
  end
end

-- Bucket aggregates rebuilt from the known REST trades, in id order; px: the highest known id's price per bucket.
local bucket_writes, px_writes = {}, {}
local records, px_prices, order, px_order = {}, {}, {}, {}
for k = 1, known do
  local x = bucket_of(ts[k])
  if window_buckets[x] then
    local r = records[x]
    if r == nil then
      r = TradeWindows.empty_record()
      records[x] = r
      order[#order + 1] = x
    end
    TradeWindows.add_trade(r, ps[k], qs[k], ms[k], ts[k])
  end
  if px_buckets[x] then
    if px_prices[x] == nil then px_order[#px_order + 1] = x end
    px_prices[x] = prices[k]
  end
end
for _, x in ipairs(order) do
  bucket_writes[#bucket_writes + 1] = field_of(x)
  bucket_writes[#bucket_writes + 1] = TradeWindows.encode(records[x])
end
local px_min = st.px_min
for _, x in ipairs(px_order) do
  px_writes[#px_writes + 1] = field_of(x)
  px_writes[#px_writes + 1] = px_prices[x]
  if px_min == nil or x * TradeWindows.BUCKET_US < px_min then px_min = x * TradeWindows.BUCKET_US end
end
if #bucket_writes > 0 then redis.call('HSET', buckets_key, unpack(bucket_writes)) end
if #px_writes > 0 then redis.call('HSET', px_key, unpack(px_writes)) end

local state = { 'open_gaps', TradeGaps.format(keep) }
if repaired_gaps > 0 then
  local v = redis.call('HMGET', state_key, 'gaps_repaired', 'trades_repaired')
  local gap_missing = st.gap_missing
  if dec_gt(repaired_trades, gap_missing) then gap_missing = '0' else gap_missing = dec_sub(gap_missing, repaired_trades) end
  local gap_count = st.gap_count - repaired_gaps
  if gap_count < 0 then gap_count = 0 end
  for _, x in ipairs({
    'trades_applied', fmt('%d', st.trades_applied + tonumber(repaired_trades)),
    'gap_count', fmt('%d', gap_count),
    'gap_missing', gap_missing,
    'gaps_repaired', fmt('%d', (tonumber(v[1] or '0') or 0) + repaired_gaps),
    'trades_repaired', dec_add(v[2] or '0', repaired_trades),
    'px_min_us', px_min ~= nil and fmt('%d', px_min) or '',
  }) do state[#state + 1] = x end
end
if bad_gaps > 0 then
  local v = redis.call('HMGET', state_key, 'gaps_unrepairable', 'trades_unrepairable')
  for _, x in ipairs({
    'gaps_unrepairable', fmt('%d', (tonumber(v[1] or '0') or 0) + bad_gaps),
    'trades_unrepairable', dec_add(v[2] or '0', bad_trades),
    'last_unrepairable_from', last_bad[1],
    'last_unrepairable_to', last_bad[2],
  }) do state[#state + 1] = x end
end

if #bucket_writes > 0 then
  -- Forced refresh: the windows are recomputed from the buckets (T unchanged).
  st.window_bucket = nil
  TradeWindows.update(ob_key, tr1_key, tr5_key, buckets_key, state_key, st, st.t, nil, nil, nil, nil, state)
else
  redis.call('HSET', state_key, unpack(state))
end

return { repaired_gaps, repaired_trades, bad_gaps, bad_trades, #keep, unpack(result) }
