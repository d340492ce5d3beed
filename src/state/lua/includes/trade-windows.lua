--[[
  trade-windows: rolling trade statistics over EVENT time, recomputed from bounded per-bucket state.
  Included (--@include trade-windows) by apply-trade-batch-6.lua and by the book scripts, which call

    refresh_trade_windows(ob_key, tr1_key, tr5_key, buckets_key, state_key, event_time_us)

  with their own event time (decimal string of microseconds; "" or nil = none). It advances the symbol's
  event time T if newer, prunes the buckets that left the 5 s window and, when the windows can have changed,
  rewrites tr:<S>:1s and tr:<S>:5s (TTL 300 s). Returns 1 when the windows were rewritten, else 0.
  It writes only tr:<S>:1s, tr:<S>:5s, tr:<S>:buckets and tr:<S>:state, and reads ob:<S> mid_price.

  Keys (all of one symbol, one hash slot in cluster mode):
    ob_key       ob:<S>            read: mid_price (written by the book module)
    tr1_key      tr:<S>:1s         the 1 s window   (hash, TTL 300 s)
    tr5_key      tr:<S>:5s         the 5 s window   (hash, TTL 300 s)
    buckets_key  tr:<S>:buckets    hash: bucket start (us, decimal) -> packed aggregate (below); no TTL
    state_key    tr:<S>:state      hash, no TTL:
                   event_time_us   T: max event time seen (trade times, batch event times, refresh times)
                   last_trade_id, trades_applied, gap_count, gap_missing (exact), last_gap_from, last_gap_to,
                                   open_gaps (includes/trade-gaps.lua) (written by apply-trade-batch-6.lua);
                                   gaps_repaired, trades_repaired, gaps_unrepairable, trades_unrepairable,
                                   last_unrepairable_from/_to (repair-trades-6.lua)
                   window_bucket_us start of the bucket holding T when the windows were last computed
                   window_mid      the mid_price string they were computed with
                   bucket_min_us   smallest bucket start present in tr:<S>:buckets ("" = none)
                   px_min_us       no px:<S> field starts below this ("" = none stored yet)
                   px_time_us      P: the newest trade time applied, the price history's clock
                                   (apply-trade-batch-6.lua)

  Buckets: 100 ms of trade time. A trade at time t (us) is in the bucket starting at floor(t / 100000) * 100000.
  Let B = floor(T / 100000). The window of W seconds (W = 1, 5) holds the buckets B - 10W + 1 .. B, i.e. the trades
  whose bucket start is > T - W s: every trade with  (B - 10W + 1) * 100000 <= t <= T  (the current, partial bucket
  and the 10W - 1 complete ones before it; the span is between W - 0.1 s and W s). Buckets starting at or before
  (B - 50) * 100000 are deleted; a trade that falls there when applied is counted (ids, ob:) but in no window.

  Per-bucket aggregate (struct '<ddddddddd', 72 bytes): n, buy_volume, sell_volume, notional, mean price, M2 of
  prices (Welford, trades added in id order), first price (lowest id in the bucket), last price (highest id),
  newest trade time. Windows merge their buckets oldest to newest with Chan's parallel formula.

  Statistics of a window (all doubles from the decimal strings, written with %.17g, never NaN or infinity: a
  non-finite value is written as 0; an empty window is all zeros):
    count               number of trades in the window
    buy_volume          sum of qty of trades whose buyer was the taker (isBuyerMaker = false)
    sell_volume         sum of qty of the others (isBuyerMaker = true: the seller was the taker)
    volume              buy_volume + sell_volume
    notional            sum of price * qty
    vwap                notional / volume                                        (0 if volume = 0)
    price_std           population standard deviation of the trade prices, unweighted (0 if count = 0)
    trade_intensity     count / W                                                (trades per second)
    avg_trade_size      volume / count                                           (0 if count = 0)
    last_ts_us          the newest trade time in the window, integer us          (0 if count = 0)
    signed_volume       buy_volume - sell_volume
    vwap_minus_mid      vwap - mid, mid = ob:<S> mid_price as a finite positive number
                                                                     (0 if volume = 0 or no such mid)
  5 s window only:
    price_momentum      (last - first) / first, first = price of the lowest-id trade of the oldest non-empty
                        bucket, last = price of the highest-id trade of the newest non-empty bucket
                        (with trade times non-decreasing in id, as Binance's are: the window's first and last
                        trades)                                                  (0 if count < 2)
    volume_acceleration (V_new - V_old) / 2.5, V_new = volume of buckets B-24..B, V_old = volume of buckets
                        B-49..B-25: the change of the volume rate (qty/s) from the older to the newer half

  The windows depend only on the buckets, B and the mid; they are rewritten only when a trade was applied, B
  moved or the mid changed (a mid change alone rewrites vwap_minus_mid only: nothing else can have changed), so
  calling again with an older or equal time writes nothing (idempotent).
]]

local TradeWindows = {}
do
  local BUCKET_US = 100000
  local N1, N5, HALF5 = 10, 50, 25
  local TTL_SECONDS = 300
  local RECORD = '<ddddddddd'
  local fmt = string.format
  local floor = math.floor

  TradeWindows.BUCKET_US = BUCKET_US
  TradeWindows.N5 = N5

  -- %.17g round-trips a double; -0 is written as 0, and so is a non-finite value (never "inf" or "nan" in a
  -- window: validated inputs cannot produce one, this is the last guard).
  local huge = math.huge
  local function num(x)
    if x == 0 or x ~= x or x == huge or x == -huge then return '0' end
    return fmt('%.17g', x)
  end
  TradeWindows.num = num

  -- Bucket start (us) of a time (us); exact for integer times below 2^53.
  function TradeWindows.bucket_of(t)
    return floor(t / BUCKET_US)
  end

  local function field_of(b)
    return fmt('%d', b * BUCKET_US)
  end
  TradeWindows.field_of = field_of

  local function decode(s)
    local n, buy, sell, notional, mean, m2, first_p, last_p, last_ts = struct.unpack(RECORD, s)
    return { n = n, buy = buy, sell = sell, notional = notional, mean = mean, m2 = m2,
      first_p = first_p, last_p = last_p, last_ts = last_ts }
  end

  local function encode(r)
    return struct.pack(RECORD, r.n, r.buy, r.sell, r.notional, r.mean, r.m2, r.first_p, r.last_p, r.last_ts)
  end

  local function empty_record()
    return { n = 0, buy = 0, sell = 0, notional = 0, mean = 0, m2 = 0, first_p = 0, last_p = 0, last_ts = 0 }
  end

  -- One trade into a bucket (Welford). Trades arrive in id order.
  local function add_trade(r, p, q, buyer_maker, t)
    local n = r.n + 1
    r.n = n
    if buyer_maker then r.sell = r.sell + q else r.buy = r.buy + q end
    r.notional = r.notional + p * q
    local d = p - r.mean
    r.mean = r.mean + d / n
    r.m2 = r.m2 + d * (p - r.mean)
    if n == 1 then r.first_p = p end
    r.last_p = p
    if t > r.last_ts then r.last_ts = t end
  end

  TradeWindows.empty_record = empty_record
  TradeWindows.add_trade = add_trade
  TradeWindows.encode = encode

  -- Merges buckets from..to of the window (oldest first, Chan et al.): a bucket is recs[i] when this call changed
  -- it, else the packed raw[i] (false when absent). Returns n, mean, m2, buy, sell, notional, first price,
  -- last price, newest time, and the volumes of the buckets up to `half` and after it.
  local function merge_range(recs, raw, from, to, half)
    local n, mean, m2, buy, sell, notional, first_p, last_p, last_ts = 0, 0, 0, 0, 0, 0, 0, 0, 0
    local v_old, v_new = 0, 0
    local unpack_record = struct.unpack
    for i = from, to do
      local r = recs[i]
      local rn, rbuy, rsell, rnotional, rmean, rm2, rfirst, rlast, rts
      if r then
        rn, rbuy, rsell, rnotional, rmean, rm2, rfirst, rlast, rts =
          r.n, r.buy, r.sell, r.notional, r.mean, r.m2, r.first_p, r.last_p, r.last_ts
      elseif raw[i] then
        rn, rbuy, rsell, rnotional, rmean, rm2, rfirst, rlast, rts = unpack_record(RECORD, raw[i])
      end
      if rn and rn > 0 then
        if n == 0 then
          n, mean, m2, first_p = rn, rmean, rm2, rfirst
        else
          local total = n + rn
          local d = rmean - mean
          mean = mean + d * rn / total
          m2 = m2 + rm2 + d * d * n * rn / total
          n = total
        end
        buy = buy + rbuy
        sell = sell + rsell
        notional = notional + rnotional
        last_p = rlast
        if rts > last_ts then last_ts = rts end
        if i > half then v_new = v_new + rbuy + rsell else v_old = v_old + rbuy + rsell end
      end
    end
    return { n = n, mean = mean, m2 = m2, buy = buy, sell = sell, notional = notional, first_p = first_p,
      last_p = last_p, last_ts = last_ts }, v_old, v_new
  end

  local function window_fields(a, seconds, mid)
    local volume = a.buy + a.sell
    local n = a.n
    local vwap, std, avg, vmm = 0, 0, 0, 0
    if volume > 0 then
      vwap = a.notional / volume
      if mid then vmm = vwap - mid end
    end
    if n > 0 then
      avg = volume / n
      if a.m2 > 0 then std = math.sqrt(a.m2 / n) end
    end
    return {
      'count', num(n),
      'volume', num(volume),
      'notional', num(a.notional),
      'buy_volume', num(a.buy),
      'sell_volume', num(a.sell),
      'vwap', num(vwap),
      'price_std', num(std),
      'trade_intensity', num(n / seconds),
      'avg_trade_size', num(avg),
      'last_ts_us', num(a.last_ts),
      'signed_volume', num(a.buy - a.sell),
      'vwap_minus_mid', num(vmm),
    }
  end

  local function parse_mid(raw)
    local mid = tonumber(raw)
    if mid == nil or mid ~= mid or mid <= 0 or mid == math.huge then return nil end
    return mid
  end

  local function opt_number(v)
    if v == false or v == nil or v == '' then return nil end
    return tonumber(v)
  end

  -- Reads tr:<S>:state. Numbers stay below 2^53 (times in us); the trade id stays a string.
  function TradeWindows.read_state(state_key)
    local v = redis.call('HMGET', state_key, 'event_time_us', 'last_trade_id', 'window_bucket_us', 'window_mid',
      'bucket_min_us', 'px_min_us', 'trades_applied', 'gap_count', 'gap_missing', 'px_time_us', 'open_gaps')
    return {
      t = opt_number(v[1]),
      last_trade_id = (v[2] ~= false and v[2] ~= '') and v[2] or nil,
      window_bucket = opt_number(v[3]),
      window_mid = v[4] or nil,
      bucket_min = opt_number(v[5]),
      px_min = opt_number(v[6]),
      trades_applied = opt_number(v[7]) or 0,
      gap_count = opt_number(v[8]) or 0,
      gap_missing = (v[9] ~= false and v[9] ~= '') and v[9] or '0',
      px_t = opt_number(v[10]),
      open_gaps = v[11] or '',
    }
  end

  -- Brings the windows to time new_t (>= st.t), after adding the new trades (parallel arrays, id order, times
  -- <= new_t; ts/ps/qs numbers, ms booleans). extra_state: field/value pairs added to the state HSET.
  -- Writes nothing when no trade is given, T does not move and the windows cannot have changed.
  -- Returns 1 when the windows were rewritten, else 0.
  function TradeWindows.update(ob_key, tr1_key, tr5_key, buckets_key, state_key, st, new_t, ts, ps, qs, ms,
                               extra_state)
    local n_trades = ts and #ts or 0
    local advanced = st.t == nil or new_t > st.t
    local bT = floor(new_t / BUCKET_US)
    local mid_raw = redis.call('HGET', ob_key, 'mid_price') or ''
    local state = extra_state or {}
    if advanced then
      state[#state + 1] = 'event_time_us'
      state[#state + 1] = fmt('%d', new_t)
    end
    if n_trades == 0 and st.window_bucket == bT * BUCKET_US then
      if st.window_mid == mid_raw then
        if #state > 0 then redis.call('HSET', state_key, unpack(state)) end
        return 0
      end
      -- Only the mid moved (every book batch moves it): the windows' vwap is unchanged, so only vwap_minus_mid is
      -- rewritten, from the stored vwap (%.17g reads back to the same double: the same value a full recompute
      -- writes). A window hash that is gone (TTL) takes the full recompute below.
      local w1 = redis.call('HMGET', tr1_key, 'volume', 'vwap')
      local w5 = redis.call('HMGET', tr5_key, 'volume', 'vwap')
      if w1[1] and w1[2] and w5[1] and w5[2] then
        local mid = parse_mid(mid_raw)
        for _, w in ipairs({ { tr1_key, w1 }, { tr5_key, w5 } }) do
          local volume, vwap = tonumber(w[2][1]), tonumber(w[2][2])
          local vmm = 0
          if volume and volume > 0 and vwap and mid then vmm = vwap - mid end
          redis.call('HSET', w[1], 'vwap_minus_mid', num(vmm))
          redis.call('EXPIRE', w[1], TTL_SECONDS)
        end
        state[#state + 1] = 'window_mid'
        state[#state + 1] = mid_raw
        redis.call('HSET', state_key, unpack(state))
        return 1
      end
    end

    -- The 5 s window's buckets, oldest first: index i holds bucket lo + i - 1 (raw[i]: packed or false).
    local lo = bT - N5 + 1
    local fields = {}
    for i = 1, N5 do fields[i] = field_of(lo + i - 1) end
    local raw = redis.call('HMGET', buckets_key, unpack(fields))

    -- Trades into their buckets; recs[i] is a decoded bucket this call changed.
    local recs = {}
    local dirty = {}
    for k = 1, n_trades do
      local t = ts[k]
      local i = floor(t / BUCKET_US) - lo + 1
      if i >= 1 then
        local r = recs[i]
        if r == nil then
          if raw[i] then r = decode(raw[i]) else r = empty_record() end
          recs[i] = r
          dirty[#dirty + 1] = i
        end
        add_trade(r, ps[k], qs[k], ms[k], t)
      end
    end
    if #dirty > 0 then
      local writes = {}
      for _, i in ipairs(dirty) do
        writes[#writes + 1] = fields[i]
        writes[#writes + 1] = encode(recs[i])
      end
      redis.call('HSET', buckets_key, unpack(writes))
    end

    -- Prune what lies below the window: bucket_min_us is the smallest bucket stored (the hash holds only
    -- window buckets plus those that left it since the last call).
    local lo_us = lo * BUCKET_US
    if st.bucket_min ~= nil and st.bucket_min < lo_us then
      local steps = (lo_us - st.bucket_min) / BUCKET_US
      local stale = {}
      if steps <= 64 then
        for b = st.bucket_min / BUCKET_US, lo - 1 do stale[#stale + 1] = field_of(b) end
      else
        for _, f in ipairs(redis.call('HKEYS', buckets_key)) do
          if tonumber(f) < lo_us then stale[#stale + 1] = f end
        end
      end
      for from = 1, #stale, 100 do
        redis.call('HDEL', buckets_key, unpack(stale, from, math.min(from + 99, #stale)))
      end
    end
    local bucket_min = ''
    for i = 1, N5 do
      if raw[i] or recs[i] then
        bucket_min = fields[i]
        break
      end
    end

    local a5, v_old, v_new = merge_range(recs, raw, 1, N5, HALF5)
    local a1 = merge_range(recs, raw, N5 - N1 + 1, N5, N5)
    local mid = parse_mid(mid_raw)

    local f1 = window_fields(a1, 1, mid)
    redis.call('HSET', tr1_key, unpack(f1))
    redis.call('EXPIRE', tr1_key, TTL_SECONDS)

    local f5 = window_fields(a5, 5, mid)
    local momentum = 0
    if a5.n >= 2 and a5.first_p ~= 0 then momentum = (a5.last_p - a5.first_p) / a5.first_p end
    f5[#f5 + 1] = 'price_momentum'
    f5[#f5 + 1] = num(momentum)
    f5[#f5 + 1] = 'volume_acceleration'
    f5[#f5 + 1] = num((v_new - v_old) / (HALF5 * BUCKET_US / 1e6))
    redis.call('HSET', tr5_key, unpack(f5))
    redis.call('EXPIRE', tr5_key, TTL_SECONDS)

    state[#state + 1] = 'window_bucket_us'
    state[#state + 1] = fmt('%d', bT * BUCKET_US)
    state[#state + 1] = 'window_mid'
    state[#state + 1] = mid_raw
    state[#state + 1] = 'bucket_min_us'
    state[#state + 1] = bucket_min
    redis.call('HSET', state_key, unpack(state))
    return 1
  end
end

local function refresh_trade_windows(ob_key, tr1_key, tr5_key, buckets_key, state_key, event_time_us)
  local st = TradeWindows.read_state(state_key)
  local e = nil
  if event_time_us ~= nil and event_time_us ~= '' then e = tonumber(event_time_us) end
  local new_t = st.t
  if e ~= nil and (new_t == nil or e > new_t) then new_t = e end
  if new_t == nil then return 0 end
  return TradeWindows.update(ob_key, tr1_key, tr5_key, buckets_key, state_key, st, new_t)
end
