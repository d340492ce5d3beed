// Encoder for Binance spot stream SBE schema 1:0, producing exactly the official layout (schema block lengths,
// header schemaId 1 version 0). Used by tests, replay tooling and local feeders. It refuses anything the wire cannot
// carry or our decoder would refuse, so every encoded frame decodes back to the same message.
import { LAYOUTS, MAX_LEVELS_PER_SIDE, MAX_SYMBOL_BYTES, MAX_TRADES_PER_EVENT, fieldOffset } from './decoder';
import type { GroupLayout } from './decoder';
import { SbeEncodeError } from './errors';
import { MESSAGE_HEADER_LENGTH, SCHEMA_ID, SCHEMA_VERSION } from './messages';
import type { PriceLevel, SbeMessage, TradeEntry } from './messages';

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
// A lone UTF-16 surrogate has no UTF-8 form: Buffer.write would silently turn it into U+FFFD.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const TRADES = LAYOUTS.TradesStreamEvent;
const BBA = LAYOUTS.BestBidAskStreamEvent;
const SNAP = LAYOUTS.DepthSnapshotStreamEvent;
const DIFF = LAYOUTS.DepthDiffStreamEvent;

function groupOf(layout: { readonly groups: readonly GroupLayout[] }, index: number): GroupLayout {
  const g = layout.groups[index];
  if (g === undefined) throw new Error(`SBE layout has no group #${index}`);
  return g;
}
const TRADE_GROUP = groupOf(TRADES, 0);
const LEVEL_GROUP = groupOf(SNAP, 0);

function checkInt64(v: unknown, field: string): bigint {
  if (typeof v !== 'bigint')
    throw new SbeEncodeError('INVALID_FIELD', field, `expected a bigint, got ${typeof v}`);
  if (v < INT64_MIN || v > INT64_MAX)
    throw new SbeEncodeError('INT64_OUT_OF_RANGE', field, `${v} is outside int64`);
  return v;
}

function checkExponent(v: unknown, field: string): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -128 || v > 127) {
    throw new SbeEncodeError('EXPONENT_OUT_OF_RANGE', field, `${String(v)} is not an int8 (-128..127)`);
  }
}

function symbolLength(symbol: unknown): number {
  if (typeof symbol !== 'string') {
    throw new SbeEncodeError('INVALID_FIELD', 'symbol', `expected a string, got ${typeof symbol}`);
  }
  if (LONE_SURROGATE.test(symbol)) {
    throw new SbeEncodeError('INVALID_SYMBOL', 'symbol', 'contains a lone UTF-16 surrogate (no UTF-8 form)');
  }
  const n = Buffer.byteLength(symbol, 'utf8');
  if (n > MAX_SYMBOL_BYTES) {
    throw new SbeEncodeError('SYMBOL_TOO_LONG', 'symbol', `${n} UTF-8 bytes, at most ${MAX_SYMBOL_BYTES}`);
  }
  return n;
}

function checkGroup(entries: unknown, name: string, max: number): number {
  if (!Array.isArray(entries)) throw new SbeEncodeError('INVALID_FIELD', name, 'expected an array');
  if (entries.length > max) {
    throw new SbeEncodeError('GROUP_TOO_LARGE', name, `${entries.length} entries, at most ${max}`);
  }
  return entries.length;
}

function checkLevels(levels: readonly PriceLevel[], name: string): number {
  const n = checkGroup(levels, name, MAX_LEVELS_PER_SIDE);
  levels.forEach((l, i) => {
    checkInt64(l.priceMantissa, `${name}[${i}].priceMantissa`);
    checkInt64(l.qtyMantissa, `${name}[${i}].qtyMantissa`);
  });
  return n;
}

function checkTrades(trades: readonly TradeEntry[]): number {
  const n = checkGroup(trades, 'trades', MAX_TRADES_PER_EVENT);
  trades.forEach((t, i) => {
    checkInt64(t.id, `trades[${i}].id`);
    checkInt64(t.priceMantissa, `trades[${i}].priceMantissa`);
    checkInt64(t.qtyMantissa, `trades[${i}].qtyMantissa`);
    if (typeof t.isBuyerMaker !== 'boolean') {
      throw new SbeEncodeError('INVALID_FIELD', `trades[${i}].isBuyerMaker`, 'expected a boolean');
    }
    // isBestMatch is a schema constant: a message claiming otherwise cannot be represented.
    if ((t.isBestMatch as unknown) !== true) {
      throw new SbeEncodeError(
        'INVALID_FIELD',
        `trades[${i}].isBestMatch`,
        'is the constant true in schema 1:0',
      );
    }
  });
  return n;
}

/** Validates the message and returns its encoded size. */
function frameSize(msg: SbeMessage): number {
  checkExponent(msg.priceExponent, 'priceExponent');
  checkExponent(msg.qtyExponent, 'qtyExponent');
  checkInt64(msg.eventTime, 'eventTime');
  const tail = 1 + symbolLength(msg.symbol);
  switch (msg.message) {
    case 'TradesStreamEvent': {
      checkInt64(msg.transactTime, 'transactTime');
      const n = checkTrades(msg.trades);
      return (
        MESSAGE_HEADER_LENGTH +
        TRADES.blockLength +
        TRADE_GROUP.headerLength +
        n * TRADE_GROUP.blockLength +
        tail
      );
    }
    case 'BestBidAskStreamEvent':
      checkInt64(msg.bookUpdateId, 'bookUpdateId');
      checkInt64(msg.bidPriceMantissa, 'bidPriceMantissa');
      checkInt64(msg.bidQtyMantissa, 'bidQtyMantissa');
      checkInt64(msg.askPriceMantissa, 'askPriceMantissa');
      checkInt64(msg.askQtyMantissa, 'askQtyMantissa');
      return MESSAGE_HEADER_LENGTH + BBA.blockLength + tail;
    case 'DepthSnapshotStreamEvent':
    case 'DepthDiffStreamEvent': {
      if (msg.message === 'DepthSnapshotStreamEvent') {
        checkInt64(msg.bookUpdateId, 'bookUpdateId');
      } else {
        checkInt64(msg.firstBookUpdateId, 'firstBookUpdateId');
        checkInt64(msg.lastBookUpdateId, 'lastBookUpdateId');
      }
      const levels = checkLevels(msg.bids, 'bids') + checkLevels(msg.asks, 'asks');
      const block = msg.message === 'DepthSnapshotStreamEvent' ? SNAP.blockLength : DIFF.blockLength;
      return (
        MESSAGE_HEADER_LENGTH + block + 2 * LEVEL_GROUP.headerLength + levels * LEVEL_GROUP.blockLength + tail
      );
    }
    default: {
      const name: unknown = (msg as { message?: unknown }).message;
      throw new SbeEncodeError(
        'UNKNOWN_MESSAGE',
        'message',
        `${String(name)} is not a message of schema 1:0`,
      );
    }
  }
}

function writeLevels(buf: Buffer, pos: number, levels: readonly PriceLevel[]): number {
  buf.writeUInt16LE(LEVEL_GROUP.blockLength, pos);
  buf.writeUInt16LE(levels.length, pos + 2);
  let p = pos + LEVEL_GROUP.headerLength;
  for (const l of levels) {
    buf.writeBigInt64LE(l.priceMantissa, p + fieldOffset(LEVEL_GROUP, 'price'));
    buf.writeBigInt64LE(l.qtyMantissa, p + fieldOffset(LEVEL_GROUP, 'qty'));
    p += LEVEL_GROUP.blockLength;
  }
  return p;
}

/** Writes an already validated message at `pos`; returns the offset just past it. */
function writeMessage(buf: Buffer, pos: number, msg: SbeMessage): number {
  const layout = LAYOUTS[msg.message];
  buf.writeUInt16LE(layout.blockLength, pos);
  buf.writeUInt16LE(layout.templateId, pos + 2);
  buf.writeUInt16LE(SCHEMA_ID, pos + 4);
  buf.writeUInt16LE(SCHEMA_VERSION, pos + 6);
  const root = pos + MESSAGE_HEADER_LENGTH;
  const at = (name: string): number => root + fieldOffset(layout, name);
  buf.writeBigInt64LE(msg.eventTime, at('eventTime'));
  buf.writeInt8(msg.priceExponent, at('priceExponent'));
  buf.writeInt8(msg.qtyExponent, at('qtyExponent'));
  let p = root + layout.blockLength;
  switch (msg.message) {
    case 'TradesStreamEvent':
      buf.writeBigInt64LE(msg.transactTime, at('transactTime'));
      buf.writeUInt16LE(TRADE_GROUP.blockLength, p);
      buf.writeUInt32LE(msg.trades.length, p + 2);
      p += TRADE_GROUP.headerLength;
      for (const t of msg.trades) {
        buf.writeBigInt64LE(t.id, p + fieldOffset(TRADE_GROUP, 'id'));
        buf.writeBigInt64LE(t.priceMantissa, p + fieldOffset(TRADE_GROUP, 'price'));
        buf.writeBigInt64LE(t.qtyMantissa, p + fieldOffset(TRADE_GROUP, 'qty'));
        buf.writeUInt8(t.isBuyerMaker ? 1 : 0, p + fieldOffset(TRADE_GROUP, 'isBuyerMaker'));
        p += TRADE_GROUP.blockLength;
      }
      break;
    case 'BestBidAskStreamEvent':
      buf.writeBigInt64LE(msg.bookUpdateId, at('bookUpdateId'));
      buf.writeBigInt64LE(msg.bidPriceMantissa, at('bidPrice'));
      buf.writeBigInt64LE(msg.bidQtyMantissa, at('bidQty'));
      buf.writeBigInt64LE(msg.askPriceMantissa, at('askPrice'));
      buf.writeBigInt64LE(msg.askQtyMantissa, at('askQty'));
      break;
    case 'DepthSnapshotStreamEvent':
      buf.writeBigInt64LE(msg.bookUpdateId, at('bookUpdateId'));
      p = writeLevels(buf, writeLevels(buf, p, msg.bids), msg.asks);
      break;
    case 'DepthDiffStreamEvent':
      buf.writeBigInt64LE(msg.firstBookUpdateId, at('firstBookUpdateId'));
      buf.writeBigInt64LE(msg.lastBookUpdateId, at('lastBookUpdateId'));
      p = writeLevels(buf, writeLevels(buf, p, msg.bids), msg.asks);
      break;
  }
  const len = buf.write(msg.symbol, p + 1, 'utf8');
  buf.writeUInt8(len, p);
  return p + 1 + len;
}

/** Encodes one message as one frame (header included). Throws SbeEncodeError for values with no encoding. */
export function encodeMessage(msg: SbeMessage): Buffer {
  const buf = Buffer.alloc(frameSize(msg));
  writeMessage(buf, 0, msg);
  return buf;
}

/** Encodes messages as concatenated frames (what one Kinesis record may carry). */
export function encodeFrames(msgs: readonly SbeMessage[]): Buffer {
  const sizes = msgs.map((m, i) => {
    try {
      return frameSize(m);
    } catch (err) {
      if (err instanceof SbeEncodeError)
        throw new SbeEncodeError(err.code, `msgs[${i}].${err.field}`, err.problem);
      throw err;
    }
  });
  const buf = Buffer.alloc(sizes.reduce((a, b) => a + b, 0));
  let pos = 0;
  for (const m of msgs) pos = writeMessage(buf, pos, m);
  return buf;
}
