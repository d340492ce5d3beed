--[[
  trade-gaps: the open trade-id gaps of a symbol, tr:<S>:state open_gaps, shared by apply-trade-batch-6.lua (which
  opens them) and repair-trades-6.lua (which closes them). Needs --@include trade-args first.

  open_gaps is "from-to,from-to,..." (inclusive ranges of missing ids, decimal strings, oldest first; "" = none):
  the gaps the stream left that were neither repaired from REST trades nor declared unrepairable yet. At most
  MAX_OPEN gaps are kept: opening one more declares the oldest unrepairable (gaps_unrepairable + 1,
  trades_unrepairable + its size, last_unrepairable_from/_to), so the field stays small however often the stream
  drops trades.
]]

local TradeGaps = {}
do
  TradeGaps.MAX_OPEN = 32

  -- { {from, to}, ... } of the field's value.
  function TradeGaps.parse(raw)
    local gaps = {}
    if raw == nil or raw == false or raw == '' then return gaps end
    for from, to in string.gmatch(raw, '(%d+)%-(%d+)') do gaps[#gaps + 1] = { from, to } end
    return gaps
  end

  function TradeGaps.format(gaps)
    local parts = {}
    for i, g in ipairs(gaps) do parts[i] = g[1] .. '-' .. g[2] end
    return table.concat(parts, ',')
  end

  -- Number of ids in a gap, a decimal string.
  function TradeGaps.size(g)
    return TradeArgs.dec_add1(TradeArgs.dec_sub(g[2], g[1]))
  end

  -- Appends the new gaps (flat list from1, to1, ...) to the open ones; returns the state fields to HSET: open_gaps
  -- and, when the oldest had to go, the unrepairable counters (read from state_key).
  function TradeGaps.open(state_key, raw_open, flat)
    local gaps = TradeGaps.parse(raw_open)
    for k = 1, #flat, 2 do gaps[#gaps + 1] = { flat[k], flat[k + 1] } end
    local fields = {}
    if #gaps > TradeGaps.MAX_OPEN then
      local v = redis.call('HMGET', state_key, 'gaps_unrepairable', 'trades_unrepairable')
      local count, missing = tonumber(v[1] or '0') or 0, v[2] or '0'
      local dropped = #gaps - TradeGaps.MAX_OPEN
      for k = 1, dropped do missing = TradeArgs.dec_add(missing, TradeGaps.size(gaps[k])) end
      local newest = gaps[dropped]
      gaps = { unpack(gaps, dropped + 1) }
      fields = { 'gaps_unrepairable', string.format('%d', count + dropped), 'trades_unrepairable', missing,
        'last_unrepairable_from', newest[1], 'last_unrepairable_to', newest[2] }
    end
    fields[#fields + 1] = 'open_gaps'
    fields[#fields + 1] = TradeGaps.format(gaps)
    return fields
  end
end
