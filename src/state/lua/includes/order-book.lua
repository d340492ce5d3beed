--[[
  order-book: helpers of the order-book scripts (apply-depth-batch-12, apply-best-bid-ask-5, anchor-book-11).
  Everything lives in one table, Book, so an including script gains a single local name.

  Exactness
  - Ids (bookUpdateId, U, u) are decimal strings of non-negative int64s without leading zeros, compared as
    strings (Book.newer), never as Lua numbers (doubles are exact only to 2^53).
  - Prices and quantities are the exact decimal strings of the events (formatDecimal of mantissa and exponent).
    spread and mid are computed digit by digit on those strings: exact at any length, no rounding. They assume
    non-negative prices (SBE prices are).
  - The only doubles: sorted-set scores (tonumber(price), used for ordering) and the book metrics. A decimal with
    at most 15 significant digits (8 decimals below 10^7, e.g. 60000.00000000) converts to a distinct double and
    the conversion is monotonic, so scores order distinct prices exactly as their decimal values.
  - One price has one string per symbol: every price and quantity a script receives is canonical, exactly 8
    fraction digits (src/events/canonical.ts) whatever exponent its message carried, so "1.5" and "1.50" can never
    be two levels. Book.check_decimal(s) enforces the form on arguments before a script's first write.

  Diff encoding (ARGV of apply-depth-batch and the entries of book:<S>:buffer, the same string):
    "<U> <u> <eventTimeUs> <nBids> <bidPrice> <bidQty> ... <askPrice> <askQty> ..."
  single spaces, bids first (nBids pairs), then every remaining pair is an ask. A quantity 0 removes the level.

  ob:<S> fields written here
    levels (Book.level_fields):  bid1_p..bidN_p, bid1_q..bidN_q, ask1_p..askN_p, ask1_q..askN_q ("" when the
                                 source has fewer levels), ob_imbalance, bid_strength, ask_strength,
                                 book_update_id (id of these levels), book_ts_us (their event time)
    best (Book.best_fields):     (when Book.best_newer) best_bid, best_bid_qty, best_ask, best_ask_qty, spread (= best_ask - best_bid,
                                 exact), mid_price (= (best_bid + best_ask) / 2, exact: one more decimal when
                                 needed, "60000.005"), best_update_id (id of these fields), ts_us (their event
                                 time). A missing side blanks its fields and spread/mid.
    Metrics over the top N levels (q_i = quantity of level i as a double, absent levels contribute nothing):
      ob_imbalance = (sum q_bid_i - sum q_ask_i) / (sum q_bid_i + sum q_ask_i), 0 when both sums are 0
      bid_strength = sum over i = 1..N of q_bid_i / i        ask_strength likewise
    summed in level order, written with %.17g, never NaN or inf (a non-finite result is written as 0).
]]

local Book = {}

-- The buffered diffs whose u is newer than snapshot id L, in buffer order, each as { entry, U, u, ts, count, pos },
-- and how many entries are at or before L. The buffer is in u order, so it is read from the tail (in pages growing
-- from the end) down to the first entry at or before L: the cost follows what was buffered after L, not the
-- buffer's length.
function Book.buffered_after(buffer_key, L)
  local len = redis.call('LLEN', buffer_key)
  local take = 16
  while true do
    local start = len - take
    if start < 0 then start = 0 end
    local entries = redis.call('LRANGE', buffer_key, start, len - 1)
    local cut = 0
    for i = #entries, 1, -1 do
      local _, u = Book.diff_header(entries[i])
      if not Book.newer(u, L) then
        cut = i
        break
      end
    end
    if cut > 0 or start == 0 then
      local remaining = {}
      for i = cut + 1, #entries do
        local U, u, ts, count, pos = Book.diff_header(entries[i])
        remaining[#remaining + 1] = { entries[i], U, u, ts, count, pos }
      end
      return remaining, start + cut
    end
    take = take * 4
  end
end

-- Per side (1 bids, 2 asks) a map price -> qty that remembers the first-seen order of its prices, so the
-- writes that follow happen in a deterministic order. Returns the maps, the orders and the setter.
function Book.new_overlay()
  local qty, order = { {}, {} }, { {}, {} }
  local function set(side, p, q)
    local m = qty[side]
    if m[p] == nil then
      local o = order[side]
      o[#o + 1] = p
    end
    m[p] = q
  end
  return qty, order, set
end
do
  local byte, char, rep, sub, find, match, fmt = string.byte, string.char, string.rep, string.sub, string.find,
    string.match, string.format
  local concat, floor = table.concat, math.floor

  -- Raises a typed error reply ("BOOKARGS ..."). Only called before the script's first write.
  function Book.bad_args(message)
    error({ err = 'BOOKARGS ' .. message })
  end

  -- a > b for ids (decimal strings of non-negative integers, no leading zeros); an absent or empty b is smaller.
  function Book.newer(a, b)
    if not b or b == '' then return true end
    if #a ~= #b then return #a > #b end
    return a > b
  end

  -- Whether a source (book update id, event time) replaces the best bid/ask in ob: (best_update_id, ts_us): a newer
  -- id, or the same id with a later event time. The same id is the same book state seen by two streams (bestBidAsk,
  -- depth20, the full book); taking the later time on a tie makes ob: independent of which stream was written first.
  function Book.best_newer(id, ts, best_id, best_ts)
    if Book.newer(id, best_id) then return true end
    return id == best_id and ts ~= nil and ts ~= '' and Book.newer(ts, best_ts)
  end

  -- The id a + 1, as a decimal string.
  function Book.inc(a)
    local i = #a
    while i > 0 and byte(a, i) == 57 do i = i - 1 end
    if i == 0 then return '1' .. rep('0', #a) end
    return sub(a, 1, i - 1) .. char(byte(a, i) + 1) .. rep('0', #a - i)
  end

  -- The id a - 1 for a >= 1, as a decimal string.
  function Book.dec(a)
    local i = #a
    while i > 0 and byte(a, i) == 48 do i = i - 1 end
    if i == 0 then return '0' end
    local t = match(sub(a, 1, i - 1) .. char(byte(a, i) - 1) .. rep('9', #a - i), '^0*(%d-)$')
    if t == '' then return '0' end
    return t
  end

  -- A canonical decimal: digits, a dot, exactly 8 digits (src/events/canonical.ts).
  local CANONICAL = '^%d+%.%d%d%d%d%d%d%d%d$'
  function Book.check_decimal(s, what)
    if type(s) ~= 'string' or not find(s, CANONICAL) then
      Book.bad_args(what .. ' is not a canonical decimal: ' .. sub(tostring(s), 1, 40))
    end
    return s
  end

  -- Every t[from..to] is a canonical decimal.
  function Book.check_decimals(t, from, to, what)
    for i = from, to do
      if not find(t[i], CANONICAL) then
        Book.bad_args(what .. ' ' .. (i - from + 1) .. ' is not a canonical decimal: ' .. sub(t[i], 1, 40))
      end
    end
  end

  function Book.check_id(s, what)
    if type(s) ~= 'string' or not find(s, '^%d+$') or (#s > 1 and byte(s, 1) == 48) or #s > 19 then
      Book.bad_args(what .. ' is not a decimal id: ' .. sub(tostring(s), 1, 40))
    end
    return s
  end

  -- A time in us that the windows may compute with: a decimal id below 2^53 (an exact double).
  function Book.check_time(s, what)
    Book.check_id(s, what)
    if #s > 16 or tonumber(s) > 9007199254740991 then Book.bad_args(what .. ' is beyond 2^53 us: ' .. s) end
    return s
  end

  -- A quantity string is zero when it has no non-zero digit.
  function Book.is_zero(q)
    return not find(q, '[1-9]')
  end

  ---------------------------------------------------------------------------------------------------------------
  -- Exact decimal arithmetic on non-negative decimal strings.

  -- "123.4500" -> "1234500", 4
  local function parts(s)
    local dot = find(s, '.', 1, true)
    if dot then return sub(s, 1, dot - 1) .. sub(s, dot + 1), #s - dot end
    return s, 0
  end

  -- Two decimals as digit strings of equal length at a common scale.
  local function align(x, y)
    local a, sa = parts(x)
    local b, sb = parts(y)
    if sa < sb then a = a .. rep('0', sb - sa); sa = sb elseif sb < sa then b = b .. rep('0', sa - sb) end
    if #a < #b then a = rep('0', #b - #a) .. a elseif #b < #a then b = rep('0', #a - #b) .. b end
    return a, b, sa
  end

  local function add(a, b)
    local out, carry = {}, 0
    for i = #a, 1, -1 do
      local d = byte(a, i) + byte(b, i) - 96 + carry
      if d >= 10 then d = d - 10; carry = 1 else carry = 0 end
      out[i] = char(48 + d)
    end
    return (carry == 1 and '1' or '') .. concat(out)
  end

  -- a - b for a >= b (equal lengths)
  local function subtract(a, b)
    local out, borrow = {}, 0
    for i = #a, 1, -1 do
      local d = byte(a, i) - byte(b, i) - borrow
      if d < 0 then d = d + 10; borrow = 1 else borrow = 0 end
      out[i] = char(48 + d)
    end
    return concat(out)
  end

  local function half(a)
    local out, rem = {}, 0
    for i = 1, #a do
      local cur = rem * 10 + byte(a, i) - 48
      local q = floor(cur / 2)
      out[i] = char(48 + q)
      rem = cur - 2 * q
    end
    return concat(out), rem
  end

  -- Like formatDecimal: exactly `scale` fraction digits, at least one integer digit, no sign for zero.
  local function format(negative, digits, scale)
    if #digits <= scale then digits = rep('0', scale - #digits + 1) .. digits end
    local int = sub(digits, 1, #digits - scale)
    int = match(int, '^0*(%d-)$')
    if int == '' then int = '0' end
    local s = int
    if scale > 0 then s = int .. '.' .. sub(digits, #digits - scale + 1) end
    if negative and find(digits, '[1-9]') then s = '-' .. s end
    return s
  end

  -- ask - bid, exact, at the larger scale of the two (negative when the book is crossed).
  function Book.spread(bid, ask)
    local a, b, scale = align(ask, bid)
    if a >= b then return format(false, subtract(a, b), scale) end
    return format(true, subtract(b, a), scale)
  end

  -- (bid + ask) / 2, exact: at the larger scale of the two, or one more decimal (a trailing 5) when needed.
  function Book.mid(bid, ask)
    local a, b, scale = align(bid, ask)
    local q, rem = half(add(a, b))
    if rem == 0 then return format(false, q, scale) end
    return format(false, q .. '5', scale + 1)
  end

  ---------------------------------------------------------------------------------------------------------------
  -- Levels

  -- Parses the level pairs of an encoded diff or level list from byte position `pos`. Calls set(side, price, qty,
  -- score) for each, side 1 = bids (the first n_bids pairs), 2 = asks. Raises BOOKARGS on a malformed pair.
  function Book.each_level(s, pos, n_bids, set)
    local i = 0
    local len = #s
    while pos <= len do
      local p, q, nxt = match(s, '^(%d+%.?%d*) (%d+%.?%d*) ?()', pos)
      if not p then Book.bad_args('malformed level at byte ' .. pos .. ' of "' .. sub(s, 1, 60) .. '"') end
      i = i + 1
      set(i <= n_bids and 1 or 2, p, q)
      pos = nxt
    end
    if i < n_bids then Book.bad_args('fewer bid levels than announced in "' .. sub(s, 1, 60) .. '"') end
  end

  -- Header of an encoded diff: U, u, event time, number of bids, position of the first level.
  function Book.diff_header(s)
    local U, u, ts, nb, pos = match(s, '^(%d+) (%d+) (%d+) (%d+) ?()')
    if not U then Book.bad_args('malformed diff header "' .. sub(s, 1, 60) .. '"') end
    if (#U > 1 and byte(U, 1) == 48) or (#u > 1 and byte(u, 1) == 48) then
      Book.bad_args('ids with leading zeros in "' .. sub(s, 1, 60) .. '"')
    end
    if Book.newer(U, u) then Book.bad_args('U > u in "' .. sub(s, 1, 60) .. '"') end
    return U, u, ts, tonumber(nb), pos
  end

  -- Issues cmd key t[from..to] in calls of at most `chunk` arguments (never unpacks a big table at once).
  function Book.chunked(cmd, key, t, from, to, chunk)
    local i = from
    while i <= to do
      local j = i + chunk - 1
      if j > to then j = to end
      redis.call(cmd, key, unpack(t, i, j))
      i = j + 1
    end
  end

  -- Writes levels to one side of the full book: t[set_from..set_to] are price, qty pairs to set (non-zero
  -- quantities), t[del_from..del_to] prices to remove. The sorted-set score is the price string itself (ZADD
  -- parses it exactly like tonumber); ZADD goes first so that a malformed price fails before any write.
  function Book.write_side(levels_key, index_key, t, set_from, set_to, d, del_from, del_to)
    if set_to >= set_from then
      local zadd, k = {}, 0
      for i = set_from, set_to, 2 do
        local p = t[i]
        zadd[k + 1] = p
        zadd[k + 2] = p
        k = k + 2
      end
      Book.chunked('ZADD', index_key, zadd, 1, k, 1000)
      Book.chunked('HSET', levels_key, t, set_from, set_to, 1000)
    end
    if del_to >= del_from then
      Book.chunked('HDEL', levels_key, d, del_from, del_to, 1000)
      Book.chunked('ZREM', index_key, d, del_from, del_to, 1000)
    end
  end

  -- Writes an overlay (price -> final qty, prices in first-seen order) to one side of the full book.
  function Book.flush_side(levels_key, index_key, order, qty)
    local sets, dels = {}, {}
    for k = 1, #order do
      local p = order[k]
      local q = qty[p]
      if Book.is_zero(q) then
        dels[#dels + 1] = p
      else
        sets[#sets + 1] = p
        sets[#sets + 1] = q
      end
    end
    Book.write_side(levels_key, index_key, sets, 1, #sets, dels, 1, #dels)
  end

  -- The best n levels of one side of the full book: prices, quantities (arrays, best first).
  function Book.read_top(levels_key, index_key, n, descending)
    local prices = redis.call(descending and 'ZREVRANGE' or 'ZRANGE', index_key, 0, n - 1)
    if #prices == 0 then return prices, {} end
    local qtys = redis.call('HMGET', levels_key, unpack(prices))
    for i = 1, #qtys do
      if not qtys[i] then qtys[i] = '' end
    end
    return prices, qtys
  end

  -- True when best bid >= best ask (both present).
  function Book.crossed(bid, ask)
    if not bid or not ask then return false end
    return tonumber(bid) >= tonumber(ask)
  end

  local function number(x)
    if x ~= x or x == math.huge or x == -math.huge or x == 0 then return '0' end
    return fmt('%.17g', x)
  end

  -- Level fields beyond N (bid<N+1>_p .. ask20_q) left by a run with more levels (processing.order_book_levels
  -- lowered) are deleted: one HGET per write of the levels (HGET, not HEXISTS: the commands of the service's ACL
  -- user, deploy/redis/aggregator.acl), the deletion only when they exist.
  local MAX_LEVELS = 20
  function Book.clear_levels_beyond(ob_key, n)
    if n >= MAX_LEVELS or not redis.call('HGET', ob_key, 'bid' .. (n + 1) .. '_p') then return end
    local stale = {}
    for i = n + 1, MAX_LEVELS do
      stale[#stale + 1] = 'bid' .. i .. '_p'
      stale[#stale + 1] = 'bid' .. i .. '_q'
      stale[#stale + 1] = 'ask' .. i .. '_p'
      stale[#stale + 1] = 'ask' .. i .. '_q'
    end
    redis.call('HDEL', ob_key, unpack(stale))
  end

  -- Appends the level fields and metrics of top-N bids/asks (arrays of price and qty strings) to `out`.
  function Book.level_fields(out, n, bp, bq, ap, aq, id, ts)
    local k = #out
    local sum_b, sum_a, str_b, str_a = 0, 0, 0, 0
    for i = 1, n do
      local p, q = bp[i], bq[i]
      out[k + 1] = 'bid' .. i .. '_p'; out[k + 2] = p or ''
      out[k + 3] = 'bid' .. i .. '_q'; out[k + 4] = q or ''
      if q and q ~= '' then
        local x = tonumber(q) or 0
        sum_b = sum_b + x
        str_b = str_b + x / i
      end
      p, q = ap[i], aq[i]
      out[k + 5] = 'ask' .. i .. '_p'; out[k + 6] = p or ''
      out[k + 7] = 'ask' .. i .. '_q'; out[k + 8] = q or ''
      if q and q ~= '' then
        local x = tonumber(q) or 0
        sum_a = sum_a + x
        str_a = str_a + x / i
      end
      k = k + 8
    end
    local total = sum_b + sum_a
    local imbalance = 0
    if total > 0 then imbalance = (sum_b - sum_a) / total end
    out[k + 1] = 'ob_imbalance'; out[k + 2] = number(imbalance)
    out[k + 3] = 'bid_strength'; out[k + 4] = number(str_b)
    out[k + 5] = 'ask_strength'; out[k + 6] = number(str_a)
    out[k + 7] = 'book_update_id'; out[k + 8] = id
    out[k + 9] = 'book_ts_us'; out[k + 10] = ts
  end

  -- Appends the best bid/ask fields (nil = that side is empty) to `out`.
  function Book.best_fields(out, bid, bid_qty, ask, ask_qty, id, ts)
    local k = #out
    out[k + 1] = 'best_bid'; out[k + 2] = bid or ''
    out[k + 3] = 'best_bid_qty'; out[k + 4] = bid and bid_qty or ''
    out[k + 5] = 'best_ask'; out[k + 6] = ask or ''
    out[k + 7] = 'best_ask_qty'; out[k + 8] = ask and ask_qty or ''
    out[k + 9] = 'spread'; out[k + 10] = (bid and ask) and Book.spread(bid, ask) or ''
    out[k + 11] = 'mid_price'; out[k + 12] = (bid and ask) and Book.mid(bid, ask) or ''
    out[k + 13] = 'best_update_id'; out[k + 14] = id
    out[k + 15] = 'ts_us'; out[k + 16] = ts
  end
end
