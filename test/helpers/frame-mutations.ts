import { encodeAggregatedRecord } from '../../src/replay/kpl';
import { Prng, simulate } from '../../src/replay/simulator';
import { encodeMessage } from '../../src/sbe/encoder';
import type { SbeDecodeErrorCode } from '../../src/sbe/errors';

// Deterministic poison records for the fault tests: mutations of valid SBE frames and random byte strings, each
// labelled with the error code the record processor must dead-letter it with. The labels come from the wire format
// (../shared/docs/binance-sbe.md, re-stated in the tables below) and from how a record is consumed, never from
// running the decoder:
//
//   - A record the child receives (one Kinesis record, or one user record the daemon de-aggregated from a KPL
//     aggregate) holds one or more SBE frames back to back; the consumer walks them by their lengths. If any frame
//     fails, the whole record is dead-lettered under that frame's code, its valid frames included.
//   - Every mutation leaves exactly one thing wrong; everything the consumer reads before it is valid, so the code is
//     that of the single fault whatever order the checks run in.
//   - Bytes after the last frame are read as the next frame's header: fewer than 8 is a truncated header, 8 or more
//     are judged as a header (this generator makes their schema id wrong).

export type ExpectedCode = SbeDecodeErrorCode;

export const MUTATION_KINDS = [
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
export type MutationKind = (typeof MUTATION_KINDS)[number];

export interface BadRecord {
  readonly kind: MutationKind;
  readonly expected: ExpectedCode;
  /** The record's data as the child receives it. */
  readonly data: Buffer;
  readonly partitionKey: string;
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
  /** The processor's bound on numInGroup (above it: GROUP_COUNT_TOO_LARGE). */
  readonly maxCount: number;
}

export interface TemplateSpec {
  readonly name: string;
  readonly rootBlock: number;
  readonly groups: readonly GroupSpec[];
}

/** The processor's documented bounds: 10,000 trades per event, 5,000 levels per side. */
export const MAX_TRADES = 10_000;
export const MAX_LEVELS = 5_000;
/** Offset of isBuyerMaker (boolEnum: 0 or 1) in a trades entry. */
export const IS_BUYER_MAKER_OFFSET = 24;

const TRADES_GROUP: GroupSpec = { name: 'trades', headerLength: 6, entryLength: 25, maxCount: MAX_TRADES };
const levels = (name: string): GroupSpec => ({
  name,
  headerLength: 4,
  entryLength: 16,
  maxCount: MAX_LEVELS,
});

export const TEMPLATES: ReadonlyMap<number, TemplateSpec> = new Map([
  [10000, { name: 'TradesStreamEvent', rootBlock: 18, groups: [TRADES_GROUP] }],
  [10001, { name: 'BestBidAskStreamEvent', rootBlock: 50, groups: [] }],
  [10002, { name: 'DepthSnapshotStreamEvent', rootBlock: 18, groups: [levels('bids'), levels('asks')] }],
  [10003, { name: 'DepthDiffStreamEvent', rootBlock: 26, groups: [levels('bids'), levels('asks')] }],
]);

/** The KPL aggregated-record magic (a record starting with it and a matching MD5 is de-aggregated by the KCL). */
const KPL_MAGIC = Buffer.from([0xf3, 0x89, 0x9a, 0xc2]);

export interface GroupMap {
  readonly spec: GroupSpec;
  /** Offset of the group header. */
  readonly headerAt: number;
  readonly count: number;
  /** Offset of the first entry. */
  readonly entriesAt: number;
}

export interface FrameMap {
  readonly templateId: number;
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
    groups.push({ spec: g, headerAt: pos, count, entriesAt: pos + g.headerLength });
    pos += g.headerLength + count * entryLength;
  }
  const symbolLength = frame[pos];
  if (symbolLength === undefined || pos + 1 + symbolLength !== frame.length) {
    throw new Error('not exactly one frame');
  }
  return { templateId, groups, symbolLengthAt: pos, symbolLength };
}

// ---------------------------------------------------------------------------------------------------------------

/** Relative frequency of each kind in a generated sequence. */
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
};

interface Base {
  readonly frame: Buffer;
  readonly map: FrameMap;
  readonly symbol: string;
}

/** Bytes that never occur in UTF-8 (overlong leads C0/C1, leads beyond U+10FFFF F5..FF). */
const NEVER_UTF8 = [0xc0, 0xc1, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff];

export class FrameMutator {
  private readonly rng: Prng;
  private readonly bases: readonly Base[];
  private readonly withGroups: readonly Base[];
  private readonly withTrades: readonly Base[];
  private readonly withSymbol: readonly Base[];
  private readonly kinds: readonly MutationKind[];
  private readonly cumulative: readonly number[];

  /**
   * @param seed       PRNG seed: the same seed and base frames give the same records, byte for byte
   * @param baseFrames valid single frames (e.g. encodeMessage of simulated events) to mutate and to surround
   *                   mutated frames with; they need trades events with at least one trade and some depth events
   */
  constructor(
    seed: number,
    baseFrames: readonly Buffer[],
    weights: Readonly<Record<MutationKind, number>> = DEFAULT_WEIGHTS,
  ) {
    this.rng = new Prng(seed);
    this.bases = baseFrames.map((frame) => {
      const map = mapFrame(frame);
      const symbol = frame.toString('utf8', map.symbolLengthAt + 1);
      return { frame, map, symbol };
    });
    this.withGroups = this.bases.filter((b) => b.map.groups.length > 0);
    this.withTrades = this.bases.filter(
      (b) => b.map.templateId === 10000 && (b.map.groups[0]?.count ?? 0) > 0,
    );
    this.withSymbol = this.bases.filter((b) => b.map.symbolLength > 0);
    if (this.withGroups.length === 0 || this.withTrades.length === 0 || this.withSymbol.length === 0) {
      throw new Error('base frames need trades (with trades), depth events and non-empty symbols');
    }
    this.kinds = MUTATION_KINDS.filter((k) => weights[k] > 0);
    let total = 0;
    this.cumulative = this.kinds.map((k) => (total += weights[k]));
  }

  private int(lo: number, hi: number): number {
    return lo + this.rng.int(hi - lo + 1);
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

  /** One bad record of the given kind. */
  of(kind: MutationKind): BadRecord {
    switch (kind) {
      case 'empty':
        return { kind, expected: 'EMPTY', data: Buffer.alloc(0), partitionKey: 'EMPTY' };
      case 'truncated': {
        // Valid frames, then a proper prefix (at least one byte) of another: the walk runs out of bytes inside it.
        const base = this.pick(this.bases);
        const cut = this.int(1, base.frame.length - 1);
        const data = Buffer.concat([...this.neighbours(2), base.frame.subarray(0, cut)]);
        return { kind, expected: 'TRUNCATED', data, partitionKey: base.symbol };
      }
      case 'trailing-bytes': {
        const frames = Array.from({ length: this.int(1, 3) }, () => this.pick(this.bases).frame);
        let tail: Buffer;
        let expected: ExpectedCode;
        if (this.rng.float() < 0.4) {
          tail = this.bytes(this.int(1, HEADER_LENGTH - 1));
          expected = 'TRUNCATED';
        } else {
          tail = this.bytes(this.int(HEADER_LENGTH, 64));
          tail.writeUInt16LE(this.u16Except(SCHEMA_ID), 4);
          expected = 'SCHEMA_MISMATCH';
        }
        return { kind, expected, data: Buffer.concat([...frames, tail]), partitionKey: 'TRAILING' };
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
        return { kind, expected: 'SCHEMA_MISMATCH', data, partitionKey: users[0]?.partitionKey ?? 'KPL' };
      }
      case 'random': {
        const roll = this.rng.float();
        if (roll < 0.1) {
          return {
            kind,
            expected: 'TRUNCATED',
            data: this.bytes(this.int(1, HEADER_LENGTH - 1)),
            partitionKey: 'RANDOM',
          };
        }
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
        return { kind, expected, data, partitionKey: 'RANDOM' };
      }
      default:
        return this.frameMutation(kind);
    }
  }

  /** One frame damaged in place, possibly between valid frames. */
  private frameMutation(kind: MutationKind): BadRecord {
    let base: Base;
    let expected: ExpectedCode;
    let frame: Buffer;
    switch (kind) {
      case 'schema-mismatch': {
        base = this.pick(this.bases);
        frame = Buffer.from(base.frame);
        const which = this.rng.int(3);
        if (which !== 1) frame.writeUInt16LE(this.u16Except(SCHEMA_ID), 4);
        if (which !== 0) frame.writeUInt16LE(this.u16Except(SCHEMA_VERSION), 6);
        expected = 'SCHEMA_MISMATCH';
        break;
      }
      case 'unknown-template':
        base = this.pick(this.bases);
        frame = Buffer.from(base.frame);
        frame.writeUInt16LE(this.unknownTemplate(), 2);
        expected = 'UNKNOWN_TEMPLATE';
        break;
      case 'root-block-length': {
        base = this.pick(this.bases);
        frame = Buffer.from(base.frame);
        const spec = TEMPLATES.get(base.map.templateId) as TemplateSpec;
        frame.writeUInt16LE(this.int(0, spec.rootBlock - 1), 0);
        expected = 'BLOCK_LENGTH_TOO_SMALL';
        break;
      }
      case 'group-block-length': {
        base = this.pick(this.withGroups);
        frame = Buffer.from(base.frame);
        const g = this.pick(base.map.groups);
        frame.writeUInt16LE(this.int(0, g.spec.entryLength - 1), g.headerAt);
        expected = 'BLOCK_LENGTH_TOO_SMALL';
        break;
      }
      case 'group-count': {
        base = this.pick(this.withGroups);
        frame = Buffer.from(base.frame);
        const g = this.pick(base.map.groups);
        if (g.spec.headerLength === 6) {
          // u32: anything from just over the bound to 2^32 - 1.
          const v = this.rng.float() < 0.5 ? this.int(g.spec.maxCount + 1, 0xffff) : this.rng.uint32();
          frame.writeUInt32LE(Math.max(v, g.spec.maxCount + 1), g.headerAt + 2);
        } else {
          frame.writeUInt16LE(this.int(g.spec.maxCount + 1, 0xffff), g.headerAt + 2);
        }
        expected = 'GROUP_COUNT_TOO_LARGE';
        break;
      }
      case 'invalid-enum': {
        base = this.pick(this.withTrades);
        frame = Buffer.from(base.frame);
        const g = base.map.groups[0] as GroupMap;
        const entryLength = frame.readUInt16LE(g.headerAt);
        const at = g.entriesAt + this.rng.int(g.count) * entryLength + IS_BUYER_MAKER_OFFSET;
        frame[at] = this.int(2, 255);
        expected = 'INVALID_ENUM';
        break;
      }
      case 'invalid-symbol': {
        // Same length, not UTF-8: a byte that never occurs in UTF-8 anywhere, or a lead byte left without its
        // continuation at the very end.
        base = this.pick(this.withSymbol);
        frame = Buffer.from(base.frame);
        const start = base.map.symbolLengthAt + 1;
        if (this.rng.float() < 0.7) {
          frame[start + this.rng.int(base.map.symbolLength)] = this.pick(NEVER_UTF8);
        } else {
          frame[start + base.map.symbolLength - 1] = this.int(0xc2, 0xf4);
        }
        expected = 'INVALID_SYMBOL';
        break;
      }
      default:
        throw new Error(`not a frame mutation: ${kind}`);
    }
    const data = Buffer.concat([...this.neighbours(2), frame, ...this.neighbours(2)]);
    return { kind, expected, data, partitionKey: base.symbol };
  }
}

/**
 * Valid frames to mutate: the producer's encoding of `count` simulated events of `symbols` (every kind of message;
 * 5-level snapshots keep records small). Use symbols the valid traffic does not carry: a frame of a dead-lettered
 * record that was applied anyway then shows up as state of a symbol that must have none.
 */
export function simulatedBaseFrames(seed: number, symbols: readonly string[], count: number): Buffer[] {
  return [...simulate({ seed, symbols, startTimeUs: 1_600_000_000_000_000n, snapshotLevels: 5 }, count)].map(
    (e) => encodeMessage(e.message),
  );
}

/** `count` bad records from `seed`, in generation order. */
export function generateBadRecords(seed: number, count: number, baseFrames: readonly Buffer[]): BadRecord[] {
  const mutator = new FrameMutator(seed, baseFrames);
  return Array.from({ length: count }, () => mutator.next());
}

/** Records per expected code. */
export function countByCode(records: readonly { readonly expected: ExpectedCode }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) out[r.expected] = (out[r.expected] ?? 0) + 1;
  return out;
}
