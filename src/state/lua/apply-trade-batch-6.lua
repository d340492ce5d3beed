--[[
  Applies one processRecords batch of a symbol's trades to its rolling trade statistics, atomically and
  idempotently: a trade is applied only if its id is greater than the last applied one, so redelivering any prefix
  of the stream leaves every key unchanged. A jump in ids (id > last + 1) is a gap: it is counted (gap_count,
  gap_missing), recorded (last_gap_from/_to, and appended to open_gaps for repair-trades-6.lua, which fills it from
  REST trades) and returned, and the trade is still applied. The first trade ever applied opens no gap.
  Window definitions, bucket layout and the state fields: includes/trade-windows.lua.

  Ids are decimal strings of non-negative int64s, compared exactly (as numbers below 10^15, else as strings).
  Times are integer microseconds (exact as doubles below 2^53).

  KEYS[1]  ob:<SYMBOL>            writes last_trade_price, last_trade_id, last_trade_ts_us; reads mid_price
  KEYS[2]  tr:<SYMBOL>:1s         1 s window (TTL 300 s)
  KEYS[3]  tr:<SYMBOL>:5s         5 s window (TTL 300 s)
  KEYS[4]  tr:<SYMBOL>:buckets    100 ms bucket aggregates of the last 5 s
  KEYS[5]  tr:<SYMBOL>:state      last applied id, event time, gap counters
  KEYS[6]  px:<SYMBOL>            price history: hash bucket start (us) -> price (exact decimal string) of the
                                  highest-id trade of that 100 ms bucket; buckets starting at or before
                                  P - 15 s are deleted, where P (tr:<S>:state px_time_us) is the newest time of
                                  the applied trades. P, unlike T, is not moved by book events, so the history
                                  depends on the trades alone, not on how the streams interleave.

  ARGV[1]  event time of the batch, us ("" = none): the newest trade time (transactTime) of its messages
  ARGV[2..] the trades, 5 fields each, in ascending id order (an id not above its predecessor is a duplicate):
           id, trade time (us), price, qty (canonical decimals: exactly 8 fraction digits), isBuyerMaker ("1"|"0")

  T becomes max(T, ARGV[1], times of the applied trades); then the windows are refreshed as by
  refresh_trade_windows. With no trade (or only duplicates) this is refresh_trade_windows(ARGV[1]).

  Returns  { applied, duplicates, event_time_us, last_trade_id, gap1_from, gap1_to, gap2_from, gap2_to, ... }
           applied/duplicates: trades applied / skipped as not newer; event_time_us: T after the call ("" if no
           time is known yet); last_trade_id: the last applied id ("" if none ever); then each gap of this call
           as the inclusive range of missing ids (decimal strings).
  Errors   "ERR_TRADE_ARGS ..." when ARGV does not hold whole trades, an id is not a decimal id (digits, no sign,
           no leading zero, at most 19 digits), a time is not an integer below 2^53 us, a price is not a canonical
           decimal (it is stored), a qty not a number >= 0 (it is only summed) or isBuyerMaker is not "0"/"1";
           every trade is checked before the first write, so nothing is written then.
]]

--@include trade-args
--@include trade-gaps
--@include trade-windows

local ob_key, tr1_key, tr5_key, buckets_key, state_key, px_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local PX_BUCKETS = 150
local BUCKET_US = TradeWindows.BUCKET_US

local nargs = #ARGV
if nargs < 1 or (nargs - 1) % 5 ~= 0 then
  return redis.error_reply('ERR_TRADE_ARGS expected 1 + 5 x trades arguments, got ' .. nargs)
end

local dec_gt, dec_add1, dec_add, dec_sub = TradeArgs.dec_gt, TradeArgs.dec_add1, TradeArgs.dec_add, TradeArgs.dec_sub
local time_of = TradeArgs.time_of

-- Every argument is checked before the first write (in pass 1 below, which writes nothing): no half-applied call,
-- no wrapped number.
if ARGV[1] ~= '' and not time_of(ARGV[1]) then
  return redis.error_reply('ERR_TRADE_ARGS event time is not an integer below 2^53: ' .. string.sub(ARGV[1], 1, 40))
end

local st = TradeWindows.read_state(state_key)
local last = st.last_trade_id
local last_n = nil
if last ~= nil and #last <= 15 then last_n = tonumber(last) end

local new_t = st.t
local e = ARGV[1] ~= '' and tonumber(ARGV[1]) or nil
if e ~= nil and (new_t == nil or e > new_t) then new_t = e end

-- Pass 1: which trades are new, the gaps, the numbers; px_t: the price history's clock (newest trade time).
local px_t = st.px_t
local ts, ps, qs, ms, bases = {}, {}, {}, {}, {}
local duplicates = 0
local gaps = {}
local gap_count, gap_missing = st.gap_count, st.gap_missing
for base = 2, nargs, 5 do
  local id, t, p, q, buyer_maker = TradeArgs.check(ARGV, base)
  if not id then return redis.error_reply(t) end
  local id_n = nil
  if #id <= 15 then id_n = tonumber(id) end
  local newer = false
  if last == nil then
    newer = true
  elseif id_n ~= nil and last_n ~= nil then
    if id_n > last_n then
      newer = true
      if id_n > last_n + 1 then
        gaps[#gaps + 1] = string.format('%d', last_n + 1)
        gaps[#gaps + 1] = string.format('%d', id_n - 1)
        gap_count = gap_count + 1
        gap_missing = dec_add(gap_missing, string.format('%d', id_n - last_n - 1))
      end
    end
  elseif dec_gt(id, last) then
    newer = true
    local expected = dec_add1(last)
    if id ~= expected then
      gaps[#gaps + 1] = expected
      gaps[#gaps + 1] = dec_sub(id, '1')
      gap_count = gap_count + 1
      gap_missing = dec_add(gap_missing, dec_sub(id, expected))
    end
  end
  if newer then
    local k = #ts + 1
    ts[k], ps[k], qs[k], ms[k], bases[k] = t, p, q, buyer_maker, base
    if new_t == nil or t > new_t then new_t = t end
    if px_t == nil or t > px_t then px_t = t end
    last, last_n = id, id_n
  else
    duplicates = duplicates + 1
  end
end

local applied = #ts
if new_t == nil then return { 0, duplicates, '', '' } end

local extra_state = nil
if applied > 0 then
  local newest = bases[applied]
  redis.call('HSET', ob_key, 'last_trade_price', ARGV[newest + 2], 'last_trade_id', ARGV[newest],
    'last_trade_ts_us', ARGV[newest + 1])

  -- Price history: the highest-id price of each 100 ms bucket of the last 15 s of trade time.
  local bT = TradeWindows.bucket_of(px_t)
  local px_lo = bT - PX_BUCKETS + 1
  local px_fields, px_values, order = {}, {}, {}
  for k = 1, applied do
    local b = TradeWindows.bucket_of(ts[k])
    if b >= px_lo then
      if px_values[b] == nil then order[#order + 1] = b end
      px_values[b] = ARGV[bases[k] + 2]
    end
  end
  local px_min = st.px_min
  for _, b in ipairs(order) do
    local f = TradeWindows.field_of(b)
    px_fields[#px_fields + 1] = f
    px_fields[#px_fields + 1] = px_values[b]
    if px_min == nil or b * BUCKET_US < px_min then px_min = b * BUCKET_US end
    if #px_fields >= 200 then
      redis.call('HSET', px_key, unpack(px_fields))
      px_fields = {}
    end
  end
  if #px_fields > 0 then redis.call('HSET', px_key, unpack(px_fields)) end
  -- px_min_us is a lower bound of the stored bucket starts; everything below the horizon goes.
  local px_lo_us = px_lo * BUCKET_US
  if px_min ~= nil and px_min < px_lo_us then
    local stale = {}
    if (px_lo_us - px_min) / BUCKET_US <= 64 then
      for b = px_min / BUCKET_US, px_lo - 1 do stale[#stale + 1] = TradeWindows.field_of(b) end
    else
      for _, f in ipairs(redis.call('HKEYS', px_key)) do
        if tonumber(f) < px_lo_us then stale[#stale + 1] = f end
      end
    end
    for from = 1, #stale, 100 do
      redis.call('HDEL', px_key, unpack(stale, from, math.min(from + 99, #stale)))
    end
    px_min = px_lo_us
  end

  extra_state = {
    'last_trade_id', last,
    'trades_applied', string.format('%d', st.trades_applied + applied),
    'px_min_us', px_min ~= nil and string.format('%d', px_min) or '',
    'px_time_us', string.format('%d', px_t),
  }
  if #gaps > 0 then
    extra_state[#extra_state + 1] = 'gap_count'
    extra_state[#extra_state + 1] = string.format('%d', gap_count)
    extra_state[#extra_state + 1] = 'gap_missing'
    extra_state[#extra_state + 1] = gap_missing
    extra_state[#extra_state + 1] = 'last_gap_from'
    extra_state[#extra_state + 1] = gaps[#gaps - 1]
    extra_state[#extra_state + 1] = 'last_gap_to'
    extra_state[#extra_state + 1] = gaps[#gaps]
    for _, v in ipairs(TradeGaps.open(state_key, st.open_gaps, gaps)) do extra_state[#extra_state + 1] = v end
  end
end

TradeWindows.update(ob_key, tr1_key, tr5_key, buckets_key, state_key, st, new_t, ts, ps, qs, ms, extra_state)

local result = { applied, duplicates, string.format('%d', new_t), last or '' }
for k = 1, #gaps do result[#result + 1] = gaps[k] end
return result
