import type { ValidationCode } from '../../src/events/validate';
import { encodeAggregatedRecord } from '../../src/replay/kpl';
import { Prng, simulate } from '../../src/replay/simulator';
import { encodeMessage } from '../../src/sbe/encoder';
import type { SbeDecodeErrorCode } from '../../src/sbe/errors';

// Deterministic poison records for the fault tests: mutations of valid SBE frames and random byte strings, each
// labelled with what the record processor must do with it: the error code, the frame index and the bytes of its one
// dead letter, and how many valid frames of the record it decodes. The labels come from the wire format
// (../shared/docs/binance-sbe.md, re-stated in the tables below), the documented validation rules
// (src/events/validate.ts's header) and how a record is consumed, never from running the decoder or the validator:
//
//   - A record the child receives (one Kinesis record, or one user record the daemon de-aggregated from a KPL
//     aggregate) holds one or more SBE frames back to back; the consumer walks them by their lengths. The valid
//     frames before a damaged frame are decoded. A damaged frame whose extent is still known (a boolEnum byte other
//     than 0 or 1: INVALID_ENUM; a symbol that is not UTF-8: INVALID_SYMBOL) is dead-lettered alone and the frames
//     after it are decoded too; any other decode error makes the lengths untrustworthy, so the bytes from the
//     damaged frame to the end of the record are one dead letter. A record unreadable from its first byte (and an
//     empty one) is dead-lettered whole, as frame 0.
//   - A frame that decodes is validated; one carrying an impossible value (a negative id or time, a time far in
//     the future, an exponent outside -18..18, a price <= 0, a quantity < 0, an empty symbol or one with a
//     character other than letters and digits) is dead-lettered alone under its validation code.
//   - The valid frames of a record are those of the base symbols: outside processing.symbols in the fault tests,
//     they are decoded, skipped and counted, never applied.
//   - Every mutation leaves exactly one thing wrong, and everything the consumer reads or checks before it is valid,
//     so the code is that of the single fault whatever order the checks run in.
//   - Bytes after the last frame are read as the next frame's header: fewer than 8 is a truncated header, 8 or more
//     are judged as a header (this generator makes their schema id wrong).

export type ExpectedCode = SbeDecodeErrorCode | ValidationCode;

/** Kinds whose record's bytes fail to decode (the codes of src/sbe). */
const DECODE_KINDS = [
  'empty',
  'truncated',
  'schema-mismatch',
  'unknown-template',
  'root-block-length',
  'group-block-length',
  'group-count',
  'invalid-enum',
  'invalid-symbol',
  'trailing-bytes',
  'corrupt-kpl',
  'random',
] as const;

/** Field-level mutations of one valid frame: it still decodes, and breaks exactly one validation rule. */
const FIELD_KINDS = [
  'negative-trade-id',
  'trade-id-order',
  'negative-update-id',
  'diff-update-ids',
  'negative-time',
  'future-time',
  'bad-exponent',
  'bad-price',
  'bad-qty',
  'empty-symbol',
  'symbol-character',
] as const;

export const MUTATION_KINDS = [...DECODE_KINDS, ...FIELD_KINDS] as const;
export type MutationKind = (typeof MUTATION_KINDS)[number];
type FieldKind = (typeof FIELD_KINDS)[number];

export interface BadRecord {
  readonly kind: MutationKind;
  readonly expected: ExpectedCode;
  /** The record's data as the child receives it. */
  readonly data: Buffer;
  readonly partitionKey: string;
  /** Index in the record of the bad frame (0 for a record unreadable from its first byte, or empty). */
  readonly frameIndex: number;
  /** The bytes of the record's one dead letter: the bad frame alone, or from it to the end of the record. */
  readonly deadLetterData: Buffer;
  /** The symbol the dead letter names: that of a decoded frame failing validation (not INVALID_SYMBOL). */
  readonly deadLetterSymbol: string | undefined;
  /**
   * The record's valid frames that are decoded (and pass validation): those before the bad frame, plus those after
   * it when it is dead-lettered alone. Their symbols are the base symbols: skipped when those are unlisted.
   */
  readonly skipped: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Schema 1:0 as documented (binance-sbe.md), independent of src/sbe.

export const HEADER_LENGTH = 8;
export const SCHEMA_ID = 1;
export const SCHEMA_VERSION = 0;

export interface GroupSpec {
  readonly name: string;
  /** 6: u16 blockLength + u32 numInGroup; 4: u16 + u16. */
  readonly headerLength: 4 | 6;
  readonly entryLength: number;
  /** Offsets of the entry's fields (constant fields take no bytes and are not listed). */
  readonly fields: Readonly<Record<string, number>>;
  /** The processor's bound on numInGroup (above it: GROUP_COUNT_TOO_LARGE). */
  readonly maxCount: number;
}

export interface TemplateSpec {
  readonly name: string;
  readonly rootBlock: number;
  /** Offsets of the root fields in the root block. */
  readonly fields: Readonly<Record<string, number>>;
  readonly groups: readonly GroupSpec[];
}

/** The processor's documented bounds: 10,000 trades per event, 5,000 levels per side. */
export const MAX_TRADES = 10_000;
export const MAX_LEVELS = 5_000;
/** Offset of isBuyerMaker (boolEnum: 0 or 1) in a trades entry. */
export const IS_BUYER_MAKER_OFFSET = 24;

const TRADES_GROUP: GroupSpec = {
  name: 'trades',
  headerLength: 6,
  entryLength: 25,
  fields: { id: 0, price: 8, qty: 16, isBuyerMaker: IS_BUYER_MAKER_OFFSET },
  maxCount: MAX_TRADES,
};
const levels = (name: string): GroupSpec => ({
  name,
  headerLength: 4,
  entryLength: 16,
  fields: { price: 0, qty: 8 },
  maxCount: MAX_LEVELS,
});

export const TRADES_TEMPLATE = 10000;
export const BEST_BID_ASK_TEMPLATE = 10001;
export const SNAPSHOT_TEMPLATE = 10002;
export const DIFF_TEMPLATE = 10003;

export const TEMPLATES: ReadonlyMap<number, TemplateSpec> = new Map<number, TemplateSpec>([
  [
    TRADES_TEMPLATE,
    {
      name: 'TradesStreamEvent',
      rootBlock: 18,
      fields: { eventTime: 0, transactTime: 8, priceExponent: 16, qtyExponent: 17 },
      groups: [TRADES_GROUP],
    },
  ],
  [
    BEST_BID_ASK_TEMPLATE,
    {
      name: 'BestBidAskStreamEvent',
      rootBlock: 50,
      fields: {
        eventTime: 0,
        bookUpdateId: 8,
        priceExponent: 16,
        qtyExponent: 17,
        bidPrice: 18,
        bidQty: 26,
        askPrice: 34,
        askQty: 42,
      },
      groups: [],
    },
  ],
  [
    SNAPSHOT_TEMPLATE,
    {
      name: 'DepthSnapshotStreamEvent',
      rootBlock: 18,
      fields: { eventTime: 0, bookUpdateId: 8, priceExponent: 16, qtyExponent: 17 },
      groups: [levels('bids'), levels('asks')],
    },
  ],
  [
    DIFF_TEMPLATE,
    {
      name: 'DepthDiffStreamEvent',
      rootBlock: 26,
      fields: {
        eventTime: 0,
        firstBookUpdateId: 8,
        lastBookUpdateId: 16,
        priceExponent: 24,
        qtyExponent: 25,
      },
      groups: [levels('bids'), levels('asks')],
    },
  ],
]);

// The documented validation rules (src/events/validate.ts, README "Validation").
export const MIN_EXPONENT = -18;
export const MAX_EXPONENT = 18;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const DAY_US = 86_400_000_000n;
const YEAR_US = 365n * DAY_US;

/** The KPL aggregated-record magic (a record starting with it and a matching MD5 is de-aggregated by the KCL). */
const KPL_MAGIC = Buffer.from([0xf3, 0x89, 0x9a, 0xc2]);

export interface GroupMap {
  readonly spec: GroupSpec;
  /** Offset of the group header. */
  readonly headerAt: number;
  /** Bytes per entry, as on the wire. */
  readonly entryLength: number;
  readonly count: number;
  /** Offset of the first entry. */
  readonly entriesAt: number;
}

export interface FrameMap {
  readonly templateId: number;
  readonly spec: TemplateSpec;
  readonly groups: readonly GroupMap[];
  /** Offset of the symbol's u8 length. */
  readonly symbolLengthAt: number;
  readonly symbolLength: number;
}

/** Lays out one valid schema 1:0 frame that fills `frame` exactly; throws for anything else. */
export function mapFrame(frame: Buffer): FrameMap {
  if (frame.length < HEADER_LENGTH) throw new Error('not a frame: shorter than a header');
  const blockLength = frame.readUInt16LE(0);
  const templateId = frame.readUInt16LE(2);
  if (frame.readUInt16LE(4) !== SCHEMA_ID || frame.readUInt16LE(6) !== SCHEMA_VERSION) {
    throw new Error('not a frame of schema 1:0');
  }
  const spec = TEMPLATES.get(templateId);
  if (spec === undefined || blockLength < spec.rootBlock)
    throw new Error(`not a frame: template ${templateId}`);
  let pos = HEADER_LENGTH + blockLength;
  const groups: GroupMap[] = [];
  for (const g of spec.groups) {
    const entryLength = frame.readUInt16LE(pos);
    const count = g.headerLength === 6 ? frame.readUInt32LE(pos + 2) : frame.readUInt16LE(pos + 2);
    if (entryLength < g.entryLength)
      throw new Error(`not a frame: ${g.name} entries of ${entryLength} bytes`);
    groups.push({ spec: g, headerAt: pos, entryLength, count, entriesAt: pos + g.headerLength });
    pos += g.headerLength + count * entryLength;
  }
  const symbolLength = frame[pos];
  if (symbolLength === undefined || pos + 1 + symbolLength !== frame.length) {
    throw new Error('not exactly one frame');
  }
  return { templateId, spec, groups, symbolLengthAt: pos, symbolLength };
}

/** Offset of a root field in a mapped frame. */
function rootField(map: FrameMap, name: string): number {
  const at = map.spec.fields[name];
  if (at === undefined) throw new Error(`${map.spec.name} has no root field ${name}`);
  return HEADER_LENGTH + at;
}

/** Offset of field `name` of entry `index` of a group. */
function entryField(g: GroupMap, index: number, name: string): number {
  const at = g.spec.fields[name];
  if (at === undefined) throw new Error(`group ${g.spec.name} has no field ${name}`);
  return g.entriesAt + index * g.entryLength + at;
}

// ---------------------------------------------------------------------------------------------------------------

/** Relative frequency of each kind in a generated sequence (the field-level kinds: 22 of 122, about 18 %). */
export const DEFAULT_WEIGHTS: Readonly<Record<MutationKind, number>> = {
  empty: 2,
  truncated: 12,
  'schema-mismatch': 8,
  'unknown-template': 8,
  'root-block-length': 8,
  'group-block-length': 8,
  'group-count': 8,
  'invalid-enum': 8,
  'invalid-symbol': 8,
  'trailing-bytes': 8,
  'corrupt-kpl': 4,
  random: 18,
  'negative-trade-id': 2,
  'trade-id-order': 2,
  'negative-update-id': 2,
  'diff-update-ids': 2,
  'negative-time': 2,
  'future-time': 2,
  'bad-exponent': 2,
  'bad-price': 2,
  'bad-qty': 2,
  'empty-symbol': 2,
  'symbol-character': 2,
};

interface Base {
  readonly frame: Buffer;
  readonly map: FrameMap;
  readonly symbol: string;
}

/** One damaged frame of a record: its bytes, its code, and whether its dead letter is the frame alone. */
interface Damaged {
  readonly base: Base;
  readonly frame: Buffer;
  readonly expected: ExpectedCode;
  /** The frame's extent is still known (INVALID_ENUM, INVALID_SYMBOL, or it decoded and failed validation). */
  readonly alone: boolean;
  /** It decoded: the dead letter names its symbol unless the symbol is what is wrong. */
  readonly decoded: boolean;
}

/** Bytes that never occur in UTF-8 (overlong leads C0/C1, leads beyond U+10FFFF F5..FF). */
const NEVER_UTF8 = [0xc0, 0xc1, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff];
/** ASCII characters the symbol rule refuses (neither a letter nor a digit). */
const NOT_SYMBOL_CHARACTERS = [0x20, 0x7b];

export class FrameMutator {
  private readonly rng: Prng;
  private readonly nowUs: bigint;
  private readonly bases: readonly Base[];
  private readonly withGroups: readonly Base[];
  private readonly withTrades: readonly Base[];
  /** Trades events of at least two trades. */
  private readonly withTwoTrades: readonly Base[];
  /** Best bid/ask events and depth snapshots: a root bookUpdateId. */
  private readonly withBookUpdateId: readonly Base[];
  private readonly bestBidAsks: readonly Base[];
  private readonly diffs: readonly Base[];
  /** Depth events with at least one level. */
  private readonly withLevels: readonly Base[];
  private readonly withSymbol: readonly Base[];
  private readonly kinds: readonly MutationKind[];
  private readonly cumulative: readonly number[];

  /**
   * @param seed       PRNG seed: the same seed, base frames and clock give the same records, byte for byte
   * @param baseFrames valid single frames (e.g. encodeMessage of simulated events) to mutate and to surround
   *                   mutated frames with; they need every kind of message, trades events with two trades or
   *                   more, and depth events with levels
   * @param nowMs      the clock future times are drawn from: at least one day after it (the processor allows
   *                   seconds of skew)
   */
  constructor(
    seed: number,
    baseFrames: readonly Buffer[],
    weights: Readonly<Record<MutationKind, number>> = DEFAULT_WEIGHTS,
    nowMs: number = Date.now(),
  ) {
    this.rng = new Prng(seed);
    this.nowUs = BigInt(Math.trunc(nowMs)) * 1000n;
    this.bases = baseFrames.map((frame) => {
      const map = mapFrame(frame);
      const symbol = frame.toString('utf8', map.symbolLengthAt + 1);
      return { frame, map, symbol };
    });
    const template = (id: number) => (b: Base) => b.map.templateId === id;
    const trades = (b: Base) => b.map.groups[0]?.count ?? 0;
    this.withGroups = this.bases.filter((b) => b.map.groups.length > 0);
    this.withTrades = this.bases.filter((b) => template(TRADES_TEMPLATE)(b) && trades(b) > 0);
    this.withTwoTrades = this.withTrades.filter((b) => trades(b) > 1);
    this.bestBidAsks = this.bases.filter(template(BEST_BID_ASK_TEMPLATE));
    const snapshots = this.bases.filter(template(SNAPSHOT_TEMPLATE));
    this.withBookUpdateId = [...this.bestBidAsks, ...snapshots];
    this.diffs = this.bases.filter(template(DIFF_TEMPLATE));
    this.withLevels = this.bases.filter(
      (b) => b.map.templateId !== TRADES_TEMPLATE && b.map.groups.some((g) => g.count > 0),
    );
    this.withSymbol = this.bases.filter((b) => b.map.symbolLength > 0);
    for (const [name, pool] of [
      ['trades events with two trades or more', this.withTwoTrades],
      ['best bid/ask events', this.bestBidAsks],
      ['depth snapshots', snapshots],
      ['depth diffs', this.diffs],
      ['depth events with levels', this.withLevels],
      ['non-empty symbols', this.withSymbol],
    ] as const) {
      if (pool.length === 0) throw new Error(`base frames need ${name}`);
    }
    this.kinds = MUTATION_KINDS.filter((k) => weights[k] > 0);
    let total = 0;
    this.cumulative = this.kinds.map((k) => (total += weights[k]));
  }

  private int(lo: number, hi: number): number {
    return lo + this.rng.int(hi - lo + 1);
  }

  /** An integer in [lo, hi] (hi - lo < 2^64), from 64 random bits. */
  private bigint(lo: bigint, hi: bigint): bigint {
    const bits = (BigInt(this.rng.uint32()) << 32n) | BigInt(this.rng.uint32());
    return lo + (bits % (hi - lo + 1n));
  }

  /** A negative int64: small half the time (just below zero), else anywhere down to -2^63. */
  private negative(): bigint {
    return this.rng.float() < 0.5 ? this.bigint(-1000n, -1n) : this.bigint(INT64_MIN, -1n);
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.rng.int(items.length)] as T;
  }

  private bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.rng.int(256);
    return out;
  }

  /** A u16 other than `not`. */
  private u16Except(not: number): number {
    const v = this.rng.int(0xffff);
    return v >= not ? v + 1 : v;
  }

  /** A template id that is none of schema 1:0's. */
  private unknownTemplate(): number {
    for (;;) {
      const v = this.rng.int(0x10000);
      if (!TEMPLATES.has(v)) return v;
    }
  }

  /** Valid frames to put around a mutated one (none most of the time). */
  private neighbours(max: number): Buffer[] {
    const n = this.rng.float() < 0.6 ? 0 : this.int(1, max);
    return Array.from({ length: n }, () => this.pick(this.bases).frame);
  }

  next(): BadRecord {
    const r = this.rng.float() * (this.cumulative[this.cumulative.length - 1] ?? 0);
    const i = this.cumulative.findIndex((c) => r < c);
    return this.of(this.kinds[i] ?? 'random');
  }

  /** A record dead-lettered whole, as frame 0, with nothing decoded. */
  private whole(kind: MutationKind, expected: ExpectedCode, data: Buffer, partitionKey: string): BadRecord {
    return {
      kind,
      expected,
      data,
      partitionKey,
      frameIndex: 0,
      deadLetterData: data,
      deadLetterSymbol: undefined,
      skipped: 0,
    };
  }

  /** Valid frames, then bytes that do not decode and end the record. */
  private tail(
    kind: MutationKind,
    expected: ExpectedCode,
    frames: readonly Buffer[],
    tail: Buffer,
    partitionKey: string,
  ): BadRecord {
    return {
      kind,
      expected,
      data: Buffer.concat([...frames, tail]),
      partitionKey,
      frameIndex: frames.length,
      deadLetterData: tail,
      deadLetterSymbol: undefined,
      skipped: frames.length,
    };
  }

  /** One bad record of the given kind. */
  of(kind: MutationKind): BadRecord {
    switch (kind) {
      case 'empty':
        return this.whole(kind, 'EMPTY', Buffer.alloc(0), 'EMPTY');
      case 'truncated': {
        // Valid frames, then a proper prefix (at least one byte) of another: the walk runs out of bytes inside it.
        const base = this.pick(this.bases);
        const cut = this.int(1, base.frame.length - 1);
        return this.tail(kind, 'TRUNCATED', this.neighbours(2), base.frame.subarray(0, cut), base.symbol);
      }
      case 'trailing-bytes': {
        const frames = Array.from({ length: this.int(1, 3) }, () => this.pick(this.bases).frame);
        if (this.rng.float() < 0.4) {
          return this.tail(kind, 'TRUNCATED', frames, this.bytes(this.int(1, HEADER_LENGTH - 1)), 'TRAILING');
        }
        const tail = this.bytes(this.int(HEADER_LENGTH, 64));
        tail.writeUInt16LE(this.u16Except(SCHEMA_ID), 4);
        return this.tail(kind, 'SCHEMA_MISMATCH', frames, tail, 'TRAILING');
      }
      case 'corrupt-kpl': {
        // A KPL aggregate of valid frames whose MD5 does not match: the KCL hands it over as one plain record,
        // whose first 8 bytes (magic + the protobuf's first tag 0x0a) are not a schema 1:0 header.
        const users = Array.from({ length: this.int(1, 4) }, () => {
          const b = this.pick(this.bases);
          return { partitionKey: b.symbol, data: b.frame };
        });
        const data = encodeAggregatedRecord(users);
        const at = data.length - 1 - this.rng.int(16);
        data[at] = (data[at] ?? 0) ^ (1 << this.rng.int(8));
        if (data.readUInt16LE(4) === SCHEMA_ID && data.readUInt16LE(6) === SCHEMA_VERSION) {
          throw new Error('internal: a KPL aggregate that reads as a schema 1:0 header');
        }
        return this.whole(kind, 'SCHEMA_MISMATCH', data, users[0]?.partitionKey ?? 'KPL');
      }
      case 'random': {
        const roll = this.rng.float();
        if (roll < 0.1)
          return this.whole(kind, 'TRUNCATED', this.bytes(this.int(1, HEADER_LENGTH - 1)), 'RANDOM');
        const data = this.bytes(this.int(HEADER_LENGTH, 1024));
        let expected: ExpectedCode;
        if (roll < 0.7) {
          // Another schema (or version): rejected on the header alone.
          if (this.rng.float() < 0.5) data.writeUInt16LE(this.u16Except(SCHEMA_ID), 4);
          else data.writeUInt16LE(this.u16Except(SCHEMA_VERSION), 6);
          expected = 'SCHEMA_MISMATCH';
        } else {
          data.writeUInt16LE(this.unknownTemplate(), 2);
          data.writeUInt16LE(SCHEMA_ID, 4);
          data.writeUInt16LE(SCHEMA_VERSION, 6);
          expected = 'UNKNOWN_TEMPLATE';
        }
        // Never the KPL magic: the daemon would try to de-aggregate it.
        if (data.subarray(0, 4).equals(KPL_MAGIC)) data[0] = 0;
        return this.whole(kind, expected, data, 'RANDOM');
      }
      default: {
        // One frame damaged in place, possibly between valid frames.
        const damaged = (FIELD_KINDS as readonly string[]).includes(kind)
          ? this.fieldMutation(kind as FieldKind)
          : this.frameMutation(kind);
        const before = this.neighbours(2);
        const after = this.neighbours(2);
        const { base, frame, expected, alone } = damaged;
        return {
          kind,
          expected,
          data: Buffer.concat([...before, frame, ...after]),
          partitionKey: base.symbol,
          frameIndex: before.length,
          deadLetterData: alone ? frame : Buffer.concat([frame, ...after]),
          deadLetterSymbol: damaged.decoded && expected !== 'INVALID_SYMBOL' ? base.symbol : undefined,
          skipped: before.length + (alone ? after.length : 0),
        };
      }
    }
  }

  /** A copy of a base frame of `pool`, to damage. */
  private copyOf(pool: readonly Base[]): { base: Base; frame: Buffer } {
    const base = this.pick(pool);
    return { base, frame: Buffer.from(base.frame) };
  }

  /** A frame that fails to decode. */
  private frameMutation(kind: MutationKind): Damaged {
    const rest = (base: Base, frame: Buffer, expected: ExpectedCode): Damaged => ({
      base,
      frame,
      expected,
      alone: false,
      decoded: false,
    });
    switch (kind) {
      case 'schema-mismatch': {
        const { base, frame } = this.copyOf(this.bases);
        const which = this.rng.int(3);
        if (which !== 1) frame.writeUInt16LE(this.u16Except(SCHEMA_ID), 4);
        if (which !== 0) frame.writeUInt16LE(this.u16Except(SCHEMA_VERSION), 6);
        return rest(base, frame, 'SCHEMA_MISMATCH');
      }
      case 'unknown-template': {
        const { base, frame } = this.copyOf(this.bases);
        frame.writeUInt16LE(this.unknownTemplate(), 2);
        return rest(base, frame, 'UNKNOWN_TEMPLATE');
      }
      case 'root-block-length': {
        const { base, frame } = this.copyOf(this.bases);
        frame.writeUInt16LE(this.int(0, base.map.spec.rootBlock - 1), 0);
        return rest(base, frame, 'BLOCK_LENGTH_TOO_SMALL');
      }
      case 'group-block-length': {
        const { base, frame } = this.copyOf(this.withGroups);
        const g = this.pick(base.map.groups);
        frame.writeUInt16LE(this.int(0, g.spec.entryLength - 1), g.headerAt);
        return rest(base, frame, 'BLOCK_LENGTH_TOO_SMALL');
      }
      case 'group-count': {
        const { base, frame } = this.copyOf(this.withGroups);
        const g = this.pick(base.map.groups);
        if (g.spec.headerLength === 6) {
          // u32: anything from just over the bound to 2^32 - 1.
          const v = this.rng.float() < 0.5 ? this.int(g.spec.maxCount + 1, 0xffff) : this.rng.uint32();
          frame.writeUInt32LE(Math.max(v, g.spec.maxCount + 1), g.headerAt + 2);
        } else {
          frame.writeUInt16LE(this.int(g.spec.maxCount + 1, 0xffff), g.headerAt + 2);
        }
        return rest(base, frame, 'GROUP_COUNT_TOO_LARGE');
      }
      case 'invalid-enum': {
        // The frame's lengths are intact: it is dead-lettered alone.
        const { base, frame } = this.copyOf(this.withTrades);
        const g = base.map.groups[0] as GroupMap;
        frame[entryField(g, this.rng.int(g.count), 'isBuyerMaker')] = this.int(2, 255);
        return { base, frame, expected: 'INVALID_ENUM', alone: true, decoded: false };
      }
      case 'invalid-symbol': {
        // Same length, not UTF-8: a byte that never occurs in UTF-8 anywhere, or a lead byte left without its
        // continuation at the very end. The frame's lengths are intact: it is dead-lettered alone.
        const { base, frame } = this.copyOf(this.withSymbol);
        const start = base.map.symbolLengthAt + 1;
        if (this.rng.float() < 0.7) {
          frame[start + this.rng.int(base.map.symbolLength)] = this.pick(NEVER_UTF8);
        } else {
          frame[start + base.map.symbolLength - 1] = this.int(0xc2, 0xf4);
        }
        return { base, frame, expected: 'INVALID_SYMBOL', alone: true, decoded: false };
      }
      default:
        throw new Error(`not a frame mutation: ${kind}`);
    }
  }

  /**
   * A frame that decodes, with one field made impossible. Everything validation checks before that field is
   * untouched and valid (order: symbol, exponents, eventTime, then the message's own fields in wire order, each
   * level's price and quantity before the ordering and duplicate rules), so the code is certain.
   */
  private fieldMutation(kind: FieldKind): Damaged {
    const failing = (base: Base, frame: Buffer, expected: ValidationCode): Damaged => ({
      base,
      frame,
      expected,
      alone: true,
      decoded: true,
    });
    switch (kind) {
      case 'negative-trade-id': {
        const { base, frame } = this.copyOf(this.withTrades);
        const g = base.map.groups[0] as GroupMap;
        frame.writeBigInt64LE(this.negative(), entryField(g, this.rng.int(g.count), 'id'));
        return failing(base, frame, 'BAD_TRADE_ID');
      }
      case 'trade-id-order': {
        // A later trade's id at or below the one before it, still >= 0.
        const { base, frame } = this.copyOf(this.withTwoTrades);
        const g = base.map.groups[0] as GroupMap;
        const i = this.int(1, g.count - 1);
        const previous = frame.readBigInt64LE(entryField(g, i - 1, 'id'));
        const id = this.rng.float() < 0.5 ? previous : this.bigint(0n, previous);
        frame.writeBigInt64LE(id, entryField(g, i, 'id'));
        return failing(base, frame, 'BAD_TRADE_ID');
      }
      case 'negative-update-id': {
        // bookUpdateId of a best bid/ask or a depth20 snapshot, or a diff's U (still <= u).
        const { base, frame } = this.copyOf(this.rng.float() < 0.7 ? this.withBookUpdateId : this.diffs);
        const field = base.map.templateId === DIFF_TEMPLATE ? 'firstBookUpdateId' : 'bookUpdateId';
        frame.writeBigInt64LE(this.negative(), rootField(base.map, field));
        return failing(base, frame, 'BAD_UPDATE_ID');
      }
      case 'diff-update-ids': {
        // A diff's U above its u.
        const { base, frame } = this.copyOf(this.diffs);
        const last = frame.readBigInt64LE(rootField(base.map, 'lastBookUpdateId'));
        const first = this.rng.float() < 0.5 ? last + 1n : this.bigint(last + 1n, INT64_MAX);
        frame.writeBigInt64LE(first, rootField(base.map, 'firstBookUpdateId'));
        return failing(base, frame, 'BAD_UPDATE_ID');
      }
      case 'negative-time':
      case 'future-time': {
        // eventTime, or a trades event's transactTime: < 0, or a day or more ahead of the clock (up to 2^63 - 1).
        const { base, frame } = this.copyOf(this.bases);
        const field =
          base.map.templateId === TRADES_TEMPLATE && this.rng.float() < 0.5 ? 'transactTime' : 'eventTime';
        let value: bigint;
        if (kind === 'negative-time') {
          value = this.negative();
        } else {
          const soonest = this.nowUs + DAY_US;
          value =
            this.rng.float() < 0.5
              ? this.bigint(soonest, soonest + 10n * YEAR_US)
              : this.bigint(soonest, INT64_MAX);
        }
        frame.writeBigInt64LE(value, rootField(base.map, field));
        return failing(base, frame, kind === 'negative-time' ? 'BAD_TIME' : 'FUTURE_TIME');
      }
      case 'bad-exponent': {
        // An int8 outside -18..18.
        const { base, frame } = this.copyOf(this.bases);
        const field = this.rng.float() < 0.5 ? 'priceExponent' : 'qtyExponent';
        const value =
          this.rng.float() < 0.5 ? this.int(-128, MIN_EXPONENT - 1) : this.int(MAX_EXPONENT + 1, 127);
        frame.writeInt8(value, rootField(base.map, field));
        return failing(base, frame, 'BAD_EXPONENT');
      }
      case 'bad-price':
      case 'bad-qty': {
        // A price <= 0 or a quantity < 0: in a trade, the best bid/ask, or any level of a depth event (a level's
        // price and quantity are checked before the ordering or duplicate rule compares it with the others).
        const price = kind === 'bad-price';
        const value = price && this.rng.float() < 0.2 ? 0n : this.negative();
        const roll = this.rng.float();
        let damaged: { base: Base; frame: Buffer };
        if (roll < 1 / 3) {
          damaged = this.copyOf(this.withTrades);
          const g = damaged.base.map.groups[0] as GroupMap;
          damaged.frame.writeBigInt64LE(value, entryField(g, this.rng.int(g.count), price ? 'price' : 'qty'));
        } else if (roll < 2 / 3) {
          damaged = this.copyOf(this.bestBidAsks);
          const side = this.rng.float() < 0.5 ? 'bid' : 'ask';
          damaged.frame.writeBigInt64LE(
            value,
            rootField(damaged.base.map, `${side}${price ? 'Price' : 'Qty'}`),
          );
        } else {
          damaged = this.copyOf(this.withLevels);
          const g = this.pick(damaged.base.map.groups.filter((x) => x.count > 0));
          damaged.frame.writeBigInt64LE(value, entryField(g, this.rng.int(g.count), price ? 'price' : 'qty'));
        }
        return failing(damaged.base, damaged.frame, price ? 'BAD_PRICE' : 'BAD_QTY');
      }
      case 'empty-symbol': {
        // Length 0 and the symbol's bytes removed: the frame stays well-formed and ends at the length byte.
        const base = this.pick(this.withSymbol);
        const frame = Buffer.from(base.frame.subarray(0, base.map.symbolLengthAt + 1));
        frame[base.map.symbolLengthAt] = 0;
        return failing(base, frame, 'INVALID_SYMBOL');
      }
      case 'symbol-character': {
        // One ASCII byte of the symbol replaced by a space or '{': still UTF-8, neither a letter nor a digit.
        const { base, frame } = this.copyOf(this.withSymbol);
        const ascii: number[] = [];
        for (let i = base.map.symbolLengthAt + 1; i < frame.length; i++)
          if ((frame[i] ?? 0) < 0x80) ascii.push(i);
        if (ascii.length === 0) throw new Error(`symbol ${base.symbol} has no ASCII character`);
        frame[this.pick(ascii)] = this.pick(NOT_SYMBOL_CHARACTERS);
        return failing(base, frame, 'INVALID_SYMBOL');
      }
    }
  }
}

/**
 * Valid frames to mutate: the producer's encoding of `count` simulated events of `symbols` (every kind of message;
 * 5-level snapshots keep records small). Use symbols the valid traffic does not carry and the processor does not
 * list: a frame of a bad record that was applied anyway then shows up as state of a symbol that must have none.
 */
export function simulatedBaseFrames(seed: number, symbols: readonly string[], count: number): Buffer[] {
  return [...simulate({ seed, symbols, startTimeUs: 1_600_000_000_000_000n, snapshotLevels: 5 }, count)].map(
    (e) => encodeMessage(e.message),
  );
}

/** `count` bad records from `seed`, in generation order (future times drawn after `nowMs`). */
export function generateBadRecords(
  seed: number,
  count: number,
  baseFrames: readonly Buffer[],
  nowMs: number = Date.now(),
): BadRecord[] {
  const mutator = new FrameMutator(seed, baseFrames, DEFAULT_WEIGHTS, nowMs);
  return Array.from({ length: count }, () => mutator.next());
}

/** Records per expected code. */
export function countByCode(records: readonly { readonly expected: ExpectedCode }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) out[r.expected] = (out[r.expected] ?? 0) + 1;
  return out;
}
