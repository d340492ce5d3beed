import type { SymbolBatch } from '../../src/state/batch';

/** The hash fields a batch's newest events should leave in ob:<SYMBOL>, built independently of the script. */
export function expectedFields(batch: SymbolBatch): Record<string, string> {
  const fields: Record<string, string> = {};
  if (batch.trade) {
    fields.last_trade_id = batch.trade.id.toString();
    fields.last_trade_price = batch.trade.price;
    fields.last_trade_ts_us = batch.trade.timeUs.toString();
  }
  if (batch.bestBidAsk) {
    const b = batch.bestBidAsk;
    Object.assign(fields, {
      bba_update_id: b.bookUpdateId.toString(),
      best_bid: b.bid,
      best_bid_qty: b.bidQty,
      best_ask: b.ask,
      best_ask_qty: b.askQty,
      spread: b.spread,
      ts_us: b.eventTimeUs.toString(),
    });
  }
  if (batch.depth) {
    fields.depth20_update_id = batch.depth.bookUpdateId.toString();
    fields.depth20_ts_us = batch.depth.eventTimeUs.toString();
    for (const [field, value] of batch.depth.levels) fields[field] = value;
  }
  return fields;
}
