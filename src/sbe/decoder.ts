// Decoder for Binance spot stream SBE schema 1:0 (src/sbe/stream_1_0.xml). It walks a frame by the lengths on the
// wire (root block = header.blockLength, group entries = the group's own blockLength) so frames from a later schema
// version with appended fields still decode; anything the bytes cannot support becomes an SbeDecodeError, never a
// RangeError. It runs on every Kinesis record, so it does bounds checks once per block and reads with fixed offsets.
import { SbeDecodeError } from './errors';
import {
  MESSAGE_HEADER_LENGTH,
  SCHEMA_ID,
  SCHEMA_VERSION,
  TemplateId,
  type BestBidAskStreamEvent,
  type DecodedFrame,
  type DepthDiffStreamEvent,
  type DepthSnapshotStreamEvent,
  type MessageHeader,
  type PriceLevel,
  type SbeMessage,
  type TradeEntry,
  type TradesStreamEvent,
} from './messages';

// ---------------------------------------------------------------------------------------------------------------
// Layout of schema 1:0. The offsets below are derived from these tables and a unit test checks them against the XML.

export interface FieldLayout {
  readonly name: string;
  readonly id: number;
  readonly offset: number;
  /** Bytes on the wire; 0 for a constant-presence field. */
  readonly size: number;
  readonly constant?: boolean;
}

export interface GroupLayout {
  readonly name: string;
  readonly id: number;
  /** 6 for groupSizeEncoding (u16 blockLength + u32 numInGroup), 4 for groupSize16Encoding (u16 + u16). */
  readonly headerLength: 4 | 6;
  readonly blockLength: number;
  readonly fields: readonly FieldLayout[];
}

export interface MessageLayout {
  readonly name: SbeMessage['message'];
  readonly templateId: TemplateId;
  readonly blockLength: number;
  readonly fields: readonly FieldLayout[];
  readonly groups: readonly GroupLayout[];
  /** The one var-data field of every message: u8 length + UTF-8 bytes, always last. */
  readonly data: { readonly name: 'symbol'; readonly id: number };
}

type FieldSpec = readonly [name: string, id: number, size: number, constant?: boolean];

function fields(specs: readonly FieldSpec[]): FieldLayout[] {
  let offset = 0;
  return specs.map(([name, id, size, constant]) => {
    const f: FieldLayout =
      constant === true ? { name, id, offset, size, constant } : { name, id, offset, size };
    offset += size;
    return f;
  });
}

function blockSize(fs: readonly FieldLayout[]): number {
  return fs.reduce((n, f) => n + f.size, 0);
}

function group(name: string, id: number, headerLength: 4 | 6, specs: readonly FieldSpec[]): GroupLayout {
  const fs = fields(specs);
  return { name, id, headerLength, blockLength: blockSize(fs), fields: fs };
}

function message(
  name: SbeMessage['message'],
  specs: readonly FieldSpec[],
  groups: readonly GroupLayout[],
): MessageLayout {
  const fs = fields(specs);
  return {
    name,
    templateId: TemplateId[name],
    blockLength: blockSize(fs),
    fields: fs,
    groups,
    data: { name: 'symbol', id: 200 },
  };
}

const LEVEL_FIELDS: readonly FieldSpec[] = [
  ['price', 1, 8],
  ['qty', 2, 8],
];

export const LAYOUTS: Readonly<Record<SbeMessage['message'], MessageLayout>> = {
  TradesStreamEvent: message(
    'TradesStreamEvent',
    [
      ['eventTime', 1, 8],
      ['transactTime', 2, 8],
      ['priceExponent', 3, 1],
      ['qtyExponent', 4, 1],
    ],
    [
      group('trades', 100, 6, [
        ['id', 1, 8],
        ['price', 2, 8],
        ['qty', 3, 8],
        ['isBuyerMaker', 4, 1],
        ['isBestMatch', 5, 0, true],
      ]),
    ],
  ),
  BestBidAskStreamEvent: message(
    'BestBidAskStreamEvent',
    [
      ['eventTime', 1, 8],
      ['bookUpdateId', 2, 8],
      ['priceExponent', 3, 1],
      ['qtyExponent', 4, 1],
      ['bidPrice', 5, 8],
      ['bidQty', 6, 8],
      ['askPrice', 7, 8],
      ['askQty', 8, 8],
    ],
    [],
  ),
  DepthSnapshotStreamEvent: message(
    'DepthSnapshotStreamEvent',
    [
      ['eventTime', 1, 8],
      ['bookUpdateId', 2, 8],
      ['priceExponent', 3, 1],
      ['qtyExponent', 4, 1],
    ],
    [group('bids', 100, 4, LEVEL_FIELDS), group('asks', 101, 4, LEVEL_FIELDS)],
  ),
  DepthDiffStreamEvent: message(
    'DepthDiffStreamEvent',
    [
      ['eventTime', 1, 8],
      ['firstBookUpdateId', 2, 8],
      ['lastBookUpdateId', 3, 8],
      ['priceExponent', 4, 1],
      ['qtyExponent', 5, 1],
    ],
    [group('bids', 100, 4, LEVEL_FIELDS), group('asks', 101, 4, LEVEL_FIELDS)],
  ),
};

/** Offset of a field in a block; throws at module load if the layout table lacks it (a programming error). */
export function fieldOffset(layout: { readonly fields: readonly FieldLayout[] }, name: string): number {
  const f = layout.fields.find((x) => x.name === name);
  if (f === undefined) throw new Error(`SBE layout has no field ${name}`);
  return f.offset;
}

function onlyGroup(layout: MessageLayout, index: number): GroupLayout {
  const g = layout.groups[index];
  if (g === undefined) throw new Error(`SBE layout ${layout.name} has no group #${index}`);
  return g;
}

/** Upper bounds far above anything Binance sends; they stop a corrupt count from driving a huge allocation. */
export const MAX_TRADES_PER_EVENT = 10_000;
export const MAX_LEVELS_PER_SIDE = 5_000;
export const MAX_SYMBOL_BYTES = 255;

const TRADES = LAYOUTS.TradesStreamEvent;
const BBA = LAYOUTS.BestBidAskStreamEvent;
const SNAP = LAYOUTS.DepthSnapshotStreamEvent;
const DIFF = LAYOUTS.DepthDiffStreamEvent;
const TRADE_GROUP = onlyGroup(TRADES, 0);
const SNAP_BIDS = onlyGroup(SNAP, 0);
const SNAP_ASKS = onlyGroup(SNAP, 1);
const DIFF_BIDS = onlyGroup(DIFF, 0);
const DIFF_ASKS = onlyGroup(DIFF, 1);
const LEVEL_GROUP = SNAP_BIDS;

const T_EVENT_TIME = fieldOffset(TRADES, 'eventTime');
const T_TRANSACT_TIME = fieldOffset(TRADES, 'transactTime');
const T_PRICE_EXP = fieldOffset(TRADES, 'priceExponent');
const T_QTY_EXP = fieldOffset(TRADES, 'qtyExponent');
const TE_ID = fieldOffset(TRADE_GROUP, 'id');
const TE_PRICE = fieldOffset(TRADE_GROUP, 'price');
const TE_QTY = fieldOffset(TRADE_GROUP, 'qty');
const TE_BUYER_MAKER = fieldOffset(TRADE_GROUP, 'isBuyerMaker');

const B_EVENT_TIME = fieldOffset(BBA, 'eventTime');
const B_UPDATE_ID = fieldOffset(BBA, 'bookUpdateId');
const B_PRICE_EXP = fieldOffset(BBA, 'priceExponent');
const B_QTY_EXP = fieldOffset(BBA, 'qtyExponent');
const B_BID_PRICE = fieldOffset(BBA, 'bidPrice');
const B_BID_QTY = fieldOffset(BBA, 'bidQty');
const B_ASK_PRICE = fieldOffset(BBA, 'askPrice');
const B_ASK_QTY = fieldOffset(BBA, 'askQty');

const S_EVENT_TIME = fieldOffset(SNAP, 'eventTime');
const S_UPDATE_ID = fieldOffset(SNAP, 'bookUpdateId');
const S_PRICE_EXP = fieldOffset(SNAP, 'priceExponent');
const S_QTY_EXP = fieldOffset(SNAP, 'qtyExponent');

const D_EVENT_TIME = fieldOffset(DIFF, 'eventTime');
const D_FIRST_ID = fieldOffset(DIFF, 'firstBookUpdateId');
const D_LAST_ID = fieldOffset(DIFF, 'lastBookUpdateId');
const D_PRICE_EXP = fieldOffset(DIFF, 'priceExponent');
const D_QTY_EXP = fieldOffset(DIFF, 'qtyExponent');

const L_PRICE = fieldOffset(LEVEL_GROUP, 'price');
const L_QTY = fieldOffset(LEVEL_GROUP, 'qty');

// ---------------------------------------------------------------------------------------------------------------

function truncated(field: string, offset: number, need: number, have: number): SbeDecodeError {
  return new SbeDecodeError(
    'TRUNCATED',
    offset,
    field,
    `truncated frame: need ${need} bytes for ${field} at offset ${offset}, have ${have}`,
  );
}

/** Fails unless `count` bytes are available from `pos`. */
function ensure(buf: Buffer, pos: number, count: number, field: string): void {
  const have = buf.length - pos;
  if (have < count) throw truncated(field, pos, count, have);
}

// Reused across calls: decoding is synchronous, and building the result never keeps these.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// One-entry cache of the last symbol: a stream carries one symbol over and over, so comparing a few bytes beats
// building the same string again.
const lastSymbolBytes = Buffer.alloc(MAX_SYMBOL_BYTES);
let lastSymbolLength = -1;
let lastSymbol = '';

/** Reads the var-data symbol at `pos`; returns it and the offset just past it. */
function readSymbol(buf: Buffer, pos: number): { symbol: string; end: number } {
  ensure(buf, pos, 1, 'symbol.length');
  const len = buf[pos] ?? 0;
  const start = pos + 1;
  ensure(buf, start, len, 'symbol');
  const end = start + len;
  if (len === lastSymbolLength && buf.compare(lastSymbolBytes, 0, len, start, end) === 0) {
    return { symbol: lastSymbol, end };
  }
  let ascii = true;
  for (let i = start; i < end; i++) {
    if ((buf[i] ?? 0) > 0x7f) {
      ascii = false;
      break;
    }
  }
  let symbol: string;
  if (ascii) {
    symbol = buf.toString('latin1', start, end);
  } else {
    try {
      symbol = utf8.decode(buf.subarray(start, end));
    } catch {
      throw new SbeDecodeError(
        'INVALID_SYMBOL',
        start,
        'symbol',
        `symbol at offset ${start} (${len} bytes) is not valid UTF-8`,
        end,
      );
    }
  }
  buf.copy(lastSymbolBytes, 0, start, end);
  lastSymbolLength = len;
  lastSymbol = symbol;
  return { symbol, end };
}

interface GroupDims {
  readonly entryLength: number;
  readonly count: number;
  /** Offset of the first entry. */
  readonly first: number;
}

function readGroupHeader(
  buf: Buffer,
  pos: number,
  g: GroupLayout,
  maxCount: number,
  countName: string,
): GroupDims {
  const field = `${g.name}.groupHeader`;
  ensure(buf, pos, g.headerLength, field);
  const entryLength = buf.readUInt16LE(pos);
  const count = g.headerLength === 6 ? buf.readUInt32LE(pos + 2) : buf.readUInt16LE(pos + 2);
  if (entryLength < g.blockLength) {
    throw new SbeDecodeError(
      'BLOCK_LENGTH_TOO_SMALL',
      pos,
      `${field}.blockLength`,
      `${field}.blockLength at offset ${pos} is ${entryLength}, schema 1:0 needs at least ${g.blockLength}`,
    );
  }
  if (count > maxCount) {
    throw new SbeDecodeError(
      'GROUP_COUNT_TOO_LARGE',
      pos + 2,
      `${field}.numInGroup`,
      `${field}.numInGroup at offset ${pos + 2} declares ${count} ${countName}, more than the limit ${maxCount}`,
    );
  }
  const first = pos + g.headerLength;
  const bytes = count * entryLength;
  const have = buf.length - first;
  if (bytes > have) {
    throw new SbeDecodeError(
      'TRUNCATED',
      first,
      g.name,
      `truncated frame: ${g.name} declares ${count} entries x ${entryLength} bytes = ${bytes} bytes at offset ${first}, have ${have}`,
    );
  }
  return { entryLength, count, first };
}

function levelsOf(bytes: Buffer, run: LevelRun): PriceLevel[] {
  const levels = new Array<PriceLevel>(run.count);
  let p = run.first;
  for (let i = 0; i < run.count; i++) {
    levels[i] = {
      priceMantissa: bytes.readBigInt64LE(p + L_PRICE),
      qtyMantissa: bytes.readBigInt64LE(p + L_QTY),
    };
    p += run.stride;
  }
  return levels;
}

function readLevels(buf: Buffer, pos: number, g: GroupLayout): { levels: PriceLevel[]; end: number } {
  const dims = readGroupHeader(buf, pos, g, MAX_LEVELS_PER_SIDE, 'levels');
  const levels = levelsOf(buf, { first: dims.first, count: dims.count, stride: dims.entryLength });
  return { levels, end: dims.first + dims.count * dims.entryLength };
}

function decodeTrades(
  buf: Buffer,
  root: number,
  blockLength: number,
): { message: TradesStreamEvent; end: number } {
  const dims = readGroupHeader(buf, root + blockLength, TRADE_GROUP, MAX_TRADES_PER_EVENT, 'trades');
  const trades: TradeEntry[] = [];
  let p = dims.first;
  let badEnum: { index: number; at: number; value: number } | undefined;
  for (let i = 0; i < dims.count; i++) {
    const maker = buf[p + TE_BUYER_MAKER] ?? 0;
    // Reported after the symbol is read: the frame's extent is then known and the next frame can be decoded.
    if (maker > 1 && badEnum === undefined) badEnum = { index: i, at: p + TE_BUYER_MAKER, value: maker };
    trades.push({
      id: buf.readBigInt64LE(p + TE_ID),
      priceMantissa: buf.readBigInt64LE(p + TE_PRICE),
      qtyMantissa: buf.readBigInt64LE(p + TE_QTY),
      isBuyerMaker: maker === 1,
      isBestMatch: true,
    });
    p += dims.entryLength;
  }
  const { symbol, end } = readSymbol(buf, p);
  if (badEnum !== undefined) {
    const { index, at, value } = badEnum;
    throw new SbeDecodeError(
      'INVALID_ENUM',
      at,
      `trades[${index}].isBuyerMaker`,
      `trades[${index}].isBuyerMaker at offset ${at} is ${value}, boolEnum allows only 0 or 1`,
      end,
    );
  }
  return {
    message: {
      message: 'TradesStreamEvent',
      eventTime: buf.readBigInt64LE(root + T_EVENT_TIME),
      transactTime: buf.readBigInt64LE(root + T_TRANSACT_TIME),
      priceExponent: buf.readInt8(root + T_PRICE_EXP),
      qtyExponent: buf.readInt8(root + T_QTY_EXP),
      trades,
      symbol,
    },
    end,
  };
}

function decodeBestBidAsk(
  buf: Buffer,
  root: number,
  blockLength: number,
): { message: BestBidAskStreamEvent; end: number } {
  const { symbol, end } = readSymbol(buf, root + blockLength);
  return {
    message: {
      message: 'BestBidAskStreamEvent',
      eventTime: buf.readBigInt64LE(root + B_EVENT_TIME),
      bookUpdateId: buf.readBigInt64LE(root + B_UPDATE_ID),
      priceExponent: buf.readInt8(root + B_PRICE_EXP),
      qtyExponent: buf.readInt8(root + B_QTY_EXP),
      bidPriceMantissa: buf.readBigInt64LE(root + B_BID_PRICE),
      bidQtyMantissa: buf.readBigInt64LE(root + B_BID_QTY),
      askPriceMantissa: buf.readBigInt64LE(root + B_ASK_PRICE),
      askQtyMantissa: buf.readBigInt64LE(root + B_ASK_QTY),
      symbol,
    },
    end,
  };
}

/** One side's entries in a level block: `count` entries of `stride` bytes from byte `first`. */
export interface LevelRun {
  readonly first: number;
  readonly count: number;
  readonly stride: number;
}

/**
 * A decoded depth20 snapshot's levels, not yet turned into PriceLevels: a copy of the frame's bytes of both level
 * groups, each side's entries in it, and where an entry holds its price and qty (int64 little-endian mantissas).
 */
export interface LevelBlock {
  readonly bytes: Buffer;
  readonly bids: LevelRun;
  readonly asks: LevelRun;
  readonly priceOffset: number;
  readonly qtyOffset: number;
}

type DepthMessage = DepthSnapshotStreamEvent | DepthDiffStreamEvent;

const levelBlocks = new WeakMap<DepthMessage, LevelBlock>();

/**
 * The undecoded levels of a depth20 snapshot this decoder produced (undefined for any other message or object).
 * Validation reads them without building a PriceLevel (two BigInts) per level: a stream sends a snapshot of 40
 * levels every 100 ms per symbol, and a batch writes only its newest one.
 */
export function levelBlockOf(message: DepthMessage): LevelBlock | undefined {
  return levelBlocks.get(message);
}

/** The number of levels (both sides) of a depth message, without building its levels. */
export function levelCount(message: DepthMessage): number {
  const block = levelBlocks.get(message);
  return block === undefined
    ? message.bids.length + message.asks.length
    : block.bids.count + block.asks.count;
}

/** The two level groups from `at`: their bytes copied (the caller may reuse its buffer) and where they end. */
function readLevelBlock(
  buf: Buffer,
  at: number,
  bidGroup: GroupLayout,
  askGroup: GroupLayout,
): { block: LevelBlock; end: number } {
  const bidDims = readGroupHeader(buf, at, bidGroup, MAX_LEVELS_PER_SIDE, 'levels');
  const asksAt = bidDims.first + bidDims.count * bidDims.entryLength;
  const askDims = readGroupHeader(buf, asksAt, askGroup, MAX_LEVELS_PER_SIDE, 'levels');
  const end = askDims.first + askDims.count * askDims.entryLength;
  const bytes = Buffer.allocUnsafe(end - bidDims.first);
  buf.copy(bytes, 0, bidDims.first, end);
  const block: LevelBlock = {
    bytes,
    bids: { first: 0, count: bidDims.count, stride: bidDims.entryLength },
    asks: { first: askDims.first - bidDims.first, count: askDims.count, stride: askDims.entryLength },
    priceOffset: L_PRICE,
    qtyOffset: L_QTY,
  };
  return { block, end };
}

// depth20 snapshots come with `bids` and `asks` built on first read (own enumerable getters, so a message reads,
// compares and serializes like a plain one); levelBlockOf gives their bytes.

function decodeSnapshot(
  buf: Buffer,
  root: number,
  blockLength: number,
): { message: DepthSnapshotStreamEvent; end: number } {
  const levels = readLevelBlock(buf, root + blockLength, SNAP_BIDS, SNAP_ASKS);
  const { symbol, end } = readSymbol(buf, levels.end);
  const block = levels.block;
  let bids: PriceLevel[] | undefined;
  let asks: PriceLevel[] | undefined;
  const message: DepthSnapshotStreamEvent = {
    message: 'DepthSnapshotStreamEvent',
    eventTime: buf.readBigInt64LE(root + S_EVENT_TIME),
    bookUpdateId: buf.readBigInt64LE(root + S_UPDATE_ID),
    priceExponent: buf.readInt8(root + S_PRICE_EXP),
    qtyExponent: buf.readInt8(root + S_QTY_EXP),
    get bids(): PriceLevel[] {
      return (bids ??= levelsOf(block.bytes, block.bids));
    },
    get asks(): PriceLevel[] {
      return (asks ??= levelsOf(block.bytes, block.asks));
    },
    symbol,
  };
  levelBlocks.set(message, block);
  return { message, end };
}

function decodeDiff(
  buf: Buffer,
  root: number,
  blockLength: number,
): { message: DepthDiffStreamEvent; end: number } {
  // Eager, unlike a snapshot: every level of a diff is applied, so its PriceLevels are always read (measured: a
  // lazy diff saved under 1 % of a bench pass, not worth a second form of its levels).
  const bids = readLevels(buf, root + blockLength, DIFF_BIDS);
  const asks = readLevels(buf, bids.end, DIFF_ASKS);
  const { symbol, end } = readSymbol(buf, asks.end);
  return {
    message: {
      message: 'DepthDiffStreamEvent',
      eventTime: buf.readBigInt64LE(root + D_EVENT_TIME),
      firstBookUpdateId: buf.readBigInt64LE(root + D_FIRST_ID),
      lastBookUpdateId: buf.readBigInt64LE(root + D_LAST_ID),
      priceExponent: buf.readInt8(root + D_PRICE_EXP),
      qtyExponent: buf.readInt8(root + D_QTY_EXP),
      bids: bids.levels,
      asks: asks.levels,
      symbol,
    },
    end,
  };
}

function layoutOf(templateId: number): MessageLayout | undefined {
  switch (templateId) {
    case TemplateId.TradesStreamEvent:
      return TRADES;
    case TemplateId.BestBidAskStreamEvent:
      return BBA;
    case TemplateId.DepthSnapshotStreamEvent:
      return SNAP;
    case TemplateId.DepthDiffStreamEvent:
      return DIFF;
    default:
      return undefined;
  }
}

/**
 * Decodes the one frame starting at `offset`. Error offsets are positions in `buf`. Bytes after the frame are not
 * looked at; `frameLength` says where the next frame would start.
 */
export function decodeFrame(buf: Buffer, offset = 0): DecodedFrame {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > buf.length) {
    throw new RangeError(`offset ${offset} is outside the buffer (length ${buf.length})`);
  }
  ensure(buf, offset, MESSAGE_HEADER_LENGTH, 'header');
  const blockLength = buf.readUInt16LE(offset);
  const templateId = buf.readUInt16LE(offset + 2);
  const schemaId = buf.readUInt16LE(offset + 4);
  const version = buf.readUInt16LE(offset + 6);
  if (schemaId !== SCHEMA_ID || version !== SCHEMA_VERSION) {
    const field = schemaId !== SCHEMA_ID ? 'header.schemaId' : 'header.version';
    throw new SbeDecodeError(
      'SCHEMA_MISMATCH',
      offset + (schemaId !== SCHEMA_ID ? 4 : 6),
      field,
      `${field}: header at offset ${offset} is for schema ${schemaId}:${version}, this decoder reads ${SCHEMA_ID}:${SCHEMA_VERSION}`,
    );
  }
  const layout = layoutOf(templateId);
  if (layout === undefined) {
    throw new SbeDecodeError(
      'UNKNOWN_TEMPLATE',
      offset + 2,
      'header.templateId',
      `header.templateId at offset ${offset + 2} is ${templateId}, not a message of schema 1:0`,
    );
  }
  if (blockLength < layout.blockLength) {
    throw new SbeDecodeError(
      'BLOCK_LENGTH_TOO_SMALL',
      offset,
      'header.blockLength',
      `header.blockLength at offset ${offset} is ${blockLength}, ${layout.name} needs at least ${layout.blockLength}`,
    );
  }
  const root = offset + MESSAGE_HEADER_LENGTH;
  ensure(buf, root, blockLength, `${layout.name}.root`);
  let r: { message: SbeMessage; end: number };
  switch (templateId) {
    case TemplateId.TradesStreamEvent:
      r = decodeTrades(buf, root, blockLength);
      break;
    case TemplateId.BestBidAskStreamEvent:
      r = decodeBestBidAsk(buf, root, blockLength);
      break;
    case TemplateId.DepthSnapshotStreamEvent:
      r = decodeSnapshot(buf, root, blockLength);
      break;
    default:
      r = decodeDiff(buf, root, blockLength);
      break;
  }
  const header: MessageHeader = { blockLength, templateId, schemaId, version };
  return { header, message: r.message, frameLength: r.end - offset };
}

/** One item of walkFrames: a decoded frame, or the error of the bytes [start, end) that did not decode. */
export type FrameWalkItem =
  | { readonly ok: true; readonly frame: DecodedFrame; readonly start: number; readonly end: number }
  | { readonly ok: false; readonly error: SbeDecodeError; readonly start: number; readonly end: number };

/**
 * Walks the frames of one record and never throws for bad bytes: each frame decoded, or the error of a damaged
 * one. A damaged frame whose extent is known (SbeDecodeError.frameEnd: a bad enum byte, a symbol that is not
 * UTF-8) is one item and the walk goes on after it; otherwise its lengths cannot be trusted and the rest of the
 * record, from that frame on, is one damaged item. An empty record is one EMPTY item.
 */
export function walkFrames(buf: Buffer): FrameWalkItem[] {
  if (buf.length === 0) {
    const error = new SbeDecodeError('EMPTY', 0, 'frame', 'empty buffer: no SBE frame at offset 0');
    return [{ ok: false, error, start: 0, end: 0 }];
  }
  const items: FrameWalkItem[] = [];
  let pos = 0;
  while (pos < buf.length) {
    try {
      const frame = decodeFrame(buf, pos);
      items.push({ ok: true, frame, start: pos, end: pos + frame.frameLength });
      pos += frame.frameLength;
    } catch (err) {
      if (!(err instanceof SbeDecodeError)) throw err;
      const end = err.frameEnd !== undefined && err.frameEnd > pos ? err.frameEnd : buf.length;
      items.push({ ok: false, error: err, start: pos, end });
      pos = end;
    }
  }
  return items;
}

/** Decodes every frame of a buffer holding one or more concatenated frames (one Kinesis record). */
export function decodeFrames(buf: Buffer): DecodedFrame[] {
  if (buf.length === 0)
    throw new SbeDecodeError('EMPTY', 0, 'frame', 'empty buffer: no SBE frame at offset 0');
  const frames: DecodedFrame[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const f = decodeFrame(buf, pos);
    frames.push(f);
    pos += f.frameLength;
  }
  return frames;
}
