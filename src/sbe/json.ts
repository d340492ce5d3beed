// The JSON view of a decoded frame, shared by `aggregator decode` and the vector tests: int64s as decimal strings
// (JSON numbers lose precision past 2^53), mantissas kept next to their exact decimal text. Key order is the order
// of /work/shared/vectors/sbe/vectors.jsonl `expected`.
import { formatDecimal } from './decimal';
import type { DecodedFrame, PriceLevel, SbeMessage, TradeEntry } from './messages';

function level(l: PriceLevel, priceExponent: number, qtyExponent: number): Record<string, unknown> {
  return {
    priceMantissa: l.priceMantissa.toString(),
    qtyMantissa: l.qtyMantissa.toString(),
    price: formatDecimal(l.priceMantissa, priceExponent),
    qty: formatDecimal(l.qtyMantissa, qtyExponent),
  };
}

function trade(t: TradeEntry, priceExponent: number, qtyExponent: number): Record<string, unknown> {
  return {
    id: t.id.toString(),
    priceMantissa: t.priceMantissa.toString(),
    qtyMantissa: t.qtyMantissa.toString(),
    price: formatDecimal(t.priceMantissa, priceExponent),
    qty: formatDecimal(t.qtyMantissa, qtyExponent),
    isBuyerMaker: t.isBuyerMaker,
    isBestMatch: t.isBestMatch,
  };
}

function messageFields(m: SbeMessage): Record<string, unknown> {
  const pe = m.priceExponent;
  const qe = m.qtyExponent;
  switch (m.message) {
    case 'TradesStreamEvent':
      return {
        eventTime: m.eventTime.toString(),
        transactTime: m.transactTime.toString(),
        priceExponent: pe,
        qtyExponent: qe,
        trades: m.trades.map((t) => trade(t, pe, qe)),
      };
    case 'BestBidAskStreamEvent':
      return {
        eventTime: m.eventTime.toString(),
        bookUpdateId: m.bookUpdateId.toString(),
        priceExponent: pe,
        qtyExponent: qe,
        bidPriceMantissa: m.bidPriceMantissa.toString(),
        bidQtyMantissa: m.bidQtyMantissa.toString(),
        askPriceMantissa: m.askPriceMantissa.toString(),
        askQtyMantissa: m.askQtyMantissa.toString(),
        bidPrice: formatDecimal(m.bidPriceMantissa, pe),
        bidQty: formatDecimal(m.bidQtyMantissa, qe),
        askPrice: formatDecimal(m.askPriceMantissa, pe),
        askQty: formatDecimal(m.askQtyMantissa, qe),
      };
    case 'DepthSnapshotStreamEvent':
      return {
        eventTime: m.eventTime.toString(),
        bookUpdateId: m.bookUpdateId.toString(),
        priceExponent: pe,
        qtyExponent: qe,
        bids: m.bids.map((l) => level(l, pe, qe)),
        asks: m.asks.map((l) => level(l, pe, qe)),
      };
    case 'DepthDiffStreamEvent':
      return {
        eventTime: m.eventTime.toString(),
        firstBookUpdateId: m.firstBookUpdateId.toString(),
        lastBookUpdateId: m.lastBookUpdateId.toString(),
        priceExponent: pe,
        qtyExponent: qe,
        bids: m.bids.map((l) => level(l, pe, qe)),
        asks: m.asks.map((l) => level(l, pe, qe)),
      };
  }
}

/** A JSON-safe object: frameLength, header, message name, every field in schema order, then symbol. */
export function frameToJson(frame: DecodedFrame): Record<string, unknown> {
  const h = frame.header;
  return {
    frameLength: frame.frameLength,
    header: {
      blockLength: h.blockLength,
      templateId: h.templateId,
      schemaId: h.schemaId,
      version: h.version,
    },
    message: frame.message.message,
    ...messageFields(frame.message),
    symbol: frame.message.symbol,
  };
}
