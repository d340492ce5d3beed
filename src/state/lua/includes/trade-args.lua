--[[
  trade-args: exact decimal ids and the check of one trade's five arguments, shared by apply-trade-batch-6.lua and
  repair-trades-6.lua (included with --@include trade-args). Writes nothing.

  TradeArgs.dec_gt(a, b), dec_add1(s), dec_add(a, b), dec_sub(a, b): decimal strings of non-negative integers
  without leading zeros (ids and counters beyond 2^53 stay exact); dec_sub needs a >= b.
  TradeArgs.time_of(v): v as a number when it is an integer below 2^53 (times in us stay exact doubles), else nil.
  TradeArgs.check(args, base): the trade at args[base .. base + 4] (id, time us, price, qty, isBuyerMaker):
    returns id, t, p, q, buyer_maker (boolean), or nil and an "ERR_TRADE_ARGS ..." message when the id is not a
    decimal id (digits, no sign, no leading zero, at most 19 digits), the time not an integer below 2^53, the
    price not a canonical decimal (it is stored), the qty not a number >= 0 (it is only summed) or isBuyerMaker
    not "0"/"1".
]]

local TradeArgs = {}
do
  local find, byte, sub = string.find, string.byte, string.sub
  local MAX_TIME = 9007199254740991 -- 2^53 - 1
  local CANONICAL = '^%d+%.%d%d%d%d%d%d%d%d$'

  function TradeArgs.dec_gt(a, b)
    if #a ~= #b then return #a > #b end
    return a > b
  end

  function TradeArgs.dec_add1(s)
    local i = #s
    while i > 0 and byte(s, i) == 57 do i = i - 1 end
    if i == 0 then return '1' .. string.rep('0', #s) end
    return sub(s, 1, i - 1) .. string.char(byte(s, i) + 1) .. string.rep('0', #s - i)
  end

  function TradeArgs.dec_add(a, b)
    if #a < #b then a, b = b, a end
    local out = {}
    local carry = 0
    local la, lb = #a, #b
    for k = 0, la - 1 do
      local d = byte(a, la - k) - 48 + carry
      if k < lb then d = d + byte(b, lb - k) - 48 end
      if d >= 10 then
        d = d - 10
        carry = 1
      else
        carry = 0
      end
      out[la - k] = d
    end
    if carry == 1 then return '1' .. table.concat(out) end
    return table.concat(out)
  end

  function TradeArgs.dec_sub(a, b)
    local out = {}
    local borrow = 0
    local la, lb = #a, #b
    for k = 0, la - 1 do
      local d = byte(a, la - k) - 48 - borrow
      if k < lb then d = d - (byte(b, lb - k) - 48) end
      if d < 0 then
        d = d + 10
        borrow = 1
      else
        borrow = 0
      end
      out[la - k] = d
    end
    local s = string.gsub(table.concat(out), '^0+', '')
    if s == '' then return '0' end
    return s
  end

  function TradeArgs.time_of(v)
    if #v > 16 or not find(v, '^%d+$') then return nil end
    local t = tonumber(v)
    if t > MAX_TIME then return nil end
    return t
  end

  function TradeArgs.check(args, base)
    local id = args[base]
    if #id > 19 or not find(id, '^%d+$') or (#id > 1 and byte(id, 1) == 48) then
      return nil, 'ERR_TRADE_ARGS trade id is not a decimal id: ' .. sub(id, 1, 40)
    end
    local t = TradeArgs.time_of(args[base + 1])
    if not t then return nil, 'ERR_TRADE_ARGS trade ' .. id .. ': time is not an integer below 2^53' end
    local p, q = tonumber(args[base + 2]), tonumber(args[base + 3])
    if not p or not find(args[base + 2], CANONICAL) or not q or q < 0 or q ~= q or q == math.huge then
      return nil, 'ERR_TRADE_ARGS trade ' .. id .. ': price and qty must be canonical decimals'
    end
    local maker = args[base + 4]
    if maker ~= '0' and maker ~= '1' then
      return nil, 'ERR_TRADE_ARGS trade ' .. id .. ': isBuyerMaker must be "0" or "1"'
    end
    return id, t, p, q, maker == '1'
  end
end
