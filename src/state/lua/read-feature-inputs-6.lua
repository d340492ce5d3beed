--[[
  Reads every input of a symbol's feature vector in one atomic step (read-only: writes nothing), so the vector
  is computed from one consistent state, never from a book of one batch and trade windows of another.

  KEYS[1]  ob:<SYMBOL>            live book summary and last trade
  KEYS[2]  tr:<SYMBOL>:1s         1 s trade window
  KEYS[3]  tr:<SYMBOL>:5s         5 s trade window
  KEYS[4]  tr:<SYMBOL>:state      event time T, last applied trade id
  KEYS[5]  px:<SYMBOL>            price history: 100 ms bucket start (us) -> last trade price
  KEYS[6]  book:<SYMBOL>:state    full-book sync state, book_update_id

  No ARGV. All keys carry the symbol's hash tag in cluster mode (one slot).

  Returns  { ob, tr1, tr5, trState, px, bookState }: each the HGETALL flat array field, value, ... (empty when
           the key does not exist)
]]

return {
  redis.call('HGETALL', KEYS[1]),
  redis.call('HGETALL', KEYS[2]),
  redis.call('HGETALL', KEYS[3]),
  redis.call('HGETALL', KEYS[4]),
  redis.call('HGETALL', KEYS[5]),
  redis.call('HGETALL', KEYS[6]),
}
