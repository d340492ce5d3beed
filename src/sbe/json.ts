// The JSON view of a decoded frame, shared by `aggregator decode` and the vector tests: int64s as decimal strings
// (JSON numbers lose precision past 2^53), mantissas kept next to their exact decimal text. Key order is the order
// of /work/shared/vectors/sbe/vectors.jsonl `expected`.
import { formatDecimal } from './decimal';
import { walkFrames } from './decoder';
import type { SbeDecodeError } from './errors';
import {
  MESSAGE_HEADER_LENGTH,
  type DecodedFrame,
  type PriceLevel,
  type SbeMessage,
  type TradeEntry,
} from './messages';

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

/** The JSON view of a decode error (what `aggregator decode` prints under "error"). */
export function decodeErrorToJson(err: SbeDecodeError): Record<string, unknown> {
  return { code: err.code, message: err.message, offset: err.offset, field: err.field };
}

/**
 * The bytes of one record (or a part of one) decoded as far as they decode, frame by frame (walkFrames): each
 * frame's JSON view (frameToJson) with its offset, or, for bytes that did not decode, their offset, length, the
 * error and the raw message header when its 8 bytes are there (so a foreign schema or template can be read).
 */
export function bytesToJson(bytes: Buffer): Record<string, unknown>[] {
  return walkFrames(bytes).map((item) => {
    if (item.ok) return { offset: item.start, ...frameToJson(item.frame) };
    const out: Record<string, unknown> = {
      offset: item.start,
      length: item.end - item.start,
      error: decodeErrorToJson(item.error),
    };
    if (item.end - item.start >= MESSAGE_HEADER_LENGTH) {
      out.header = {
        blockLength: bytes.readUInt16LE(item.start),
        templateId: bytes.readUInt16LE(item.start + 2),
        schemaId: bytes.readUInt16LE(item.start + 4),
        version: bytes.readUInt16LE(item.start + 6),
      };
    }
    return out;
  });
}
