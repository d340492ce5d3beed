import { AggregatorError } from '../common/errors';
import { createHash } from 'node:crypto';

// The KPL aggregated-record format, the one the KCL de-aggregates (the daemon then hands each user record to the
// child with subSequenceNumber > 0):
//
//   magic 0xF3 0x89 0x9A 0xC2 | protobuf AggregatedRecord | MD5(protobuf bytes), 16 bytes
//
//   message AggregatedRecord {
//     repeated string partition_key_table     = 1;
//     repeated string explicit_hash_key_table = 2;
//     repeated Record records                 = 3;
//   }
//   message Record {
//     required uint64 partition_key_index     = 1;
//     optional uint64 explicit_hash_key_index = 2;
//     required bytes  data                    = 3;
//     repeated Tag    tags                    = 4;   // never written; skipped when read
//   }
//
// The protobuf encoder/decoder below is hand-written for exactly these two messages (no dependency).

export const KPL_MAGIC: Buffer = Buffer.from([0xf3, 0x89, 0x9a, 0xc2]);
const MD5_LENGTH = 16;
/** Kinesis' hard limit for one record's data (the partition key counts too, but ours are short symbols). */
export const KINESIS_MAX_RECORD_BYTES = 1024 * 1024;
/** Default aggregate budget: far below the 1 MiB limit so a record stays cheap to put, poll and retry. */
export const DEFAULT_AGGREGATE_BYTES = 100 * 1024;

export interface UserRecord {
  readonly partitionKey: string;
  readonly explicitHashKey?: string | undefined;
  readonly data: Buffer;
}

/** Raised for bytes that claim to be an aggregated record (magic present) but are not a valid one. */
export class KplFormatError extends AggregatorError {
  constructor(
    readonly offset: number,
    problem: string,
  ) {
    super(`invalid KPL aggregated record at byte ${offset}: ${problem}`, {
      code: 'KPL_FORMAT',
      context: { offset },
    });
    this.name = 'KplFormatError';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// protobuf primitives

const WIRE_VARINT = 0;
const WIRE_64BIT = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_32BIT = 5;

/** Bytes a varint of a non-negative safe integer takes. */
export function varintSize(value: number): number {
  let size = 1;
  let v = value;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, offset: number, value: number): number {
  let v = value;
  let at = offset;
  while (v >= 0x80) {
    out[at++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  out[at++] = v;
  return at;
}

function tag(field: number, wireType: number): number {
  return field * 8 + wireType;
}

const TAG_PK_TABLE = tag(1, WIRE_LENGTH_DELIMITED); // 0x0a
const TAG_EHK_TABLE = tag(2, WIRE_LENGTH_DELIMITED); // 0x12
const TAG_RECORDS = tag(3, WIRE_LENGTH_DELIMITED); // 0x1a
const TAG_PK_INDEX = tag(1, WIRE_VARINT); // 0x08
const TAG_EHK_INDEX = tag(2, WIRE_VARINT); // 0x10
const TAG_DATA = tag(3, WIRE_LENGTH_DELIMITED); // 0x1a

/** Size of one length-delimited field whose payload has `length` bytes (all our tags are one byte). */
function delimitedSize(length: number): number {
  return 1 + varintSize(length) + length;
}

function recordBodySize(pkIndex: number, ehkIndex: number | undefined, dataLength: number): number {
  return (
    1 +
    varintSize(pkIndex) +
    (ehkIndex === undefined ? 0 : 1 + varintSize(ehkIndex)) +
    delimitedSize(dataLength)
  );
}

// ---------------------------------------------------------------------------------------------------------------
// encoding

export interface AggregatedRecordContent {
  readonly partitionKeys: readonly string[];
  readonly explicitHashKeys: readonly string[];
  readonly records: readonly {
    readonly partitionKeyIndex: number;
    readonly explicitHashKeyIndex?: number | undefined;
    readonly data: Buffer;
  }[];
}

/** Encodes the protobuf AggregatedRecord message (no magic, no checksum). */
export function encodeAggregatedRecordProtobuf(content: AggregatedRecordContent): Buffer {
  const pkBytes = content.partitionKeys.map((k) => Buffer.from(k, 'utf8'));
  const ehkBytes = content.explicitHashKeys.map((k) => Buffer.from(k, 'utf8'));
  let size = 0;
  for (const b of pkBytes) size += delimitedSize(b.length);
  for (const b of ehkBytes) size += delimitedSize(b.length);
  const bodySizes = content.records.map((r) =>
    recordBodySize(r.partitionKeyIndex, r.explicitHashKeyIndex, r.data.length),
  );
  for (const s of bodySizes) size += delimitedSize(s);

  const out = Buffer.allocUnsafe(size);
  let at = 0;
  const writeBytes = (fieldTag: number, bytes: Buffer): void => {
    out[at++] = fieldTag;
    at = writeVarint(out, at, bytes.length);
    at += bytes.copy(out, at);
  };
  for (const b of pkBytes) writeBytes(TAG_PK_TABLE, b);
  for (const b of ehkBytes) writeBytes(TAG_EHK_TABLE, b);
  content.records.forEach((r, i) => {
    out[at++] = TAG_RECORDS;
    at = writeVarint(out, at, bodySizes[i] ?? 0);
    out[at++] = TAG_PK_INDEX;
    at = writeVarint(out, at, r.partitionKeyIndex);
    if (r.explicitHashKeyIndex !== undefined) {
      out[at++] = TAG_EHK_INDEX;
      at = writeVarint(out, at, r.explicitHashKeyIndex);
    }
    writeBytes(TAG_DATA, r.data);
  });
  if (at !== size) throw new Error(`internal: protobuf size ${size} but wrote ${at}`);
  return out;
}

export function md5(bytes: Buffer): Buffer {
  return createHash('md5').update(bytes).digest();
}

/** magic | protobuf | MD5(protobuf). */
export function frameAggregatedRecord(protobuf: Buffer): Buffer {
  return Buffer.concat([KPL_MAGIC, protobuf, md5(protobuf)]);
}

/** Encodes user records into one aggregated record, building the key tables (each distinct key once). */
export function encodeAggregatedRecord(records: readonly UserRecord[]): Buffer {
  const pkIndex = new Map<string, number>();
  const ehkIndex = new Map<string, number>();
  const indexOf = (table: Map<string, number>, key: string): number => {
    let i = table.get(key);
    if (i === undefined) {
      i = table.size;
      table.set(key, i);
    }
    return i;
  };
  const entries = records.map((r) => ({
    partitionKeyIndex: indexOf(pkIndex, r.partitionKey),
    explicitHashKeyIndex: r.explicitHashKey === undefined ? undefined : indexOf(ehkIndex, r.explicitHashKey),
    data: r.data,
  }));
  return frameAggregatedRecord(
    encodeAggregatedRecordProtobuf({
      partitionKeys: [...pkIndex.keys()],
      explicitHashKeys: [...ehkIndex.keys()],
      records: entries,
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// decoding

class ProtoReader {
  offset: number;
  constructor(
    private readonly buf: Buffer,
    start: number,
    private readonly end: number,
    /** Offset of buf[0] in the caller's record, for error messages. */
    private readonly base: number,
  ) {
    this.offset = start;
  }

  get done(): boolean {
    return this.offset >= this.end;
  }

  varint(): number {
    let result = 0;
    let factor = 1;
    const start = this.offset;
    for (;;) {
      if (this.offset >= this.end) throw new KplFormatError(this.base + start, 'truncated varint');
      const byte = this.buf[this.offset++] ?? 0;
      result += (byte & 0x7f) * factor;
      if (byte < 0x80) break;
      factor *= 128;
      if (factor > 2 ** 63) throw new KplFormatError(this.base + start, 'varint longer than 10 bytes');
    }
    if (!Number.isSafeInteger(result)) throw new KplFormatError(this.base + start, 'varint exceeds 2^53');
    return result;
  }

  /** Returns [start, end) of a length-delimited payload and skips it. */
  delimited(): [number, number] {
    const at = this.offset;
    const length = this.varint();
    const start = this.offset;
    if (length > this.end - start) {
      throw new KplFormatError(this.base + at, `length ${length} runs past the end of the message`);
    }
    this.offset = start + length;
    return [start, start + length];
  }

  skip(wireType: number): void {
    const at = this.offset;
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_64BIT:
        this.offset += 8;
        break;
      case WIRE_LENGTH_DELIMITED:
        this.delimited();
        return;
      case WIRE_32BIT:
        this.offset += 4;
        break;
      default:
        throw new KplFormatError(this.base + at, `unsupported wire type ${wireType}`);
    }
    if (this.offset > this.end) throw new KplFormatError(this.base + at, 'truncated fixed-width field');
  }
}

/** Decodes the protobuf AggregatedRecord message (no magic, no checksum); `base` offsets error positions. */
export function decodeAggregatedRecordProtobuf(buf: Buffer, base = 0): AggregatedRecordContent {
  const partitionKeys: string[] = [];
  const explicitHashKeys: string[] = [];
  const records: { partitionKeyIndex: number; explicitHashKeyIndex?: number; data: Buffer }[] = [];
  const reader = new ProtoReader(buf, 0, buf.length, base);
  while (!reader.done) {
    const key = reader.varint();
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    if (wireType === WIRE_LENGTH_DELIMITED && (field === 1 || field === 2)) {
      const [s, e] = reader.delimited();
      (field === 1 ? partitionKeys : explicitHashKeys).push(buf.toString('utf8', s, e));
    } else if (wireType === WIRE_LENGTH_DELIMITED && field === 3) {
      const recordAt = reader.offset;
      const [s, e] = reader.delimited();
      const inner = new ProtoReader(buf, s, e, base);
      let pk: number | undefined;
      let ehk: number | undefined;
      let data: Buffer | undefined;
      while (!inner.done) {
        const k = inner.varint();
        const f = Math.floor(k / 8);
        const w = k % 8;
        if (f === 1 && w === WIRE_VARINT) pk = inner.varint();
        else if (f === 2 && w === WIRE_VARINT) ehk = inner.varint();
        else if (f === 3 && w === WIRE_LENGTH_DELIMITED) {
          const [ds, de] = inner.delimited();
          data = buf.subarray(ds, de);
        } else inner.skip(w);
      }
      if (pk === undefined) throw new KplFormatError(base + recordAt, 'record without partition_key_index');
      if (data === undefined) throw new KplFormatError(base + recordAt, 'record without data');
      records.push(
        ehk === undefined
          ? { partitionKeyIndex: pk, data }
          : { partitionKeyIndex: pk, explicitHashKeyIndex: ehk, data },
      );
    } else {
      reader.skip(wireType);
    }
  }
  records.forEach((r, i) => {
    if (r.partitionKeyIndex >= partitionKeys.length) {
      throw new KplFormatError(base, `record ${i}: partition_key_index ${r.partitionKeyIndex} out of range`);
    }
    if (r.explicitHashKeyIndex !== undefined && r.explicitHashKeyIndex >= explicitHashKeys.length) {
      throw new KplFormatError(
        base,
        `record ${i}: explicit_hash_key_index ${r.explicitHashKeyIndex} out of range`,
      );
    }
  });
  return { partitionKeys, explicitHashKeys, records };
}

/** True when the bytes start with the KPL magic (they may still fail the checksum). */
export function hasKplMagic(data: Buffer): boolean {
  return data.length >= KPL_MAGIC.length && data.subarray(0, KPL_MAGIC.length).equals(KPL_MAGIC);
}

/**
 * Strictly decodes an aggregated record: magic, protobuf and MD5 must all be right. Returns the user records with
 * their keys resolved; `data` buffers are views into `data`.
 */
export function decodeAggregatedRecord(data: Buffer): UserRecord[] {
  if (!hasKplMagic(data)) throw new KplFormatError(0, 'missing magic bytes F3 89 9A C2');
  if (data.length < KPL_MAGIC.length + MD5_LENGTH)
    throw new KplFormatError(data.length, 'too short for a checksum');
  const protobuf = data.subarray(KPL_MAGIC.length, data.length - MD5_LENGTH);
  const checksum = data.subarray(data.length - MD5_LENGTH);
  if (!md5(protobuf).equals(checksum)) {
    throw new KplFormatError(data.length - MD5_LENGTH, 'MD5 checksum does not match the protobuf bytes');
  }
  const content = decodeAggregatedRecordProtobuf(protobuf, KPL_MAGIC.length);
  return content.records.map((r) => ({
    partitionKey: content.partitionKeys[r.partitionKeyIndex] ?? '',
    explicitHashKey:
      r.explicitHashKeyIndex === undefined ? undefined : content.explicitHashKeys[r.explicitHashKeyIndex],
    data: r.data,
  }));
}

/**
 * What the KCL does with a Kinesis record: an aggregated one (magic and a matching MD5) yields its user records;
 * anything else is one plain user record under the Kinesis record's own partition key.
 */
export function deaggregate(data: Buffer, partitionKey: string): UserRecord[] {
  if (hasKplMagic(data) && data.length >= KPL_MAGIC.length + MD5_LENGTH) {
    const protobuf = data.subarray(KPL_MAGIC.length, data.length - MD5_LENGTH);
    if (md5(protobuf).equals(data.subarray(data.length - MD5_LENGTH))) return decodeAggregatedRecord(data);
  }
  return [{ partitionKey, data }];
}

// ---------------------------------------------------------------------------------------------------------------
// aggregation

/** One Kinesis record produced by the Aggregator. */
export interface AggregatedOutput {
  /** The first user record's key: Kinesis routes the whole aggregate by it (as the KPL does). */
  readonly partitionKey: string;
  readonly explicitHashKey?: string | undefined;
  readonly data: Buffer;
  readonly userRecords: number;
}

export interface AggregatorOptions {
  /** Upper bound of one aggregated record's size in bytes, magic and checksum included. */
  readonly maxBytes?: number;
  /** Upper bound of user records per aggregate (the KCL has no limit; useful to bound latency). */
  readonly maxRecords?: number;
}

/**
 * Packs user records into aggregated records no larger than `maxBytes`. `add` returns the aggregate it had to
 * close to make room (if any); `flush` closes the current one. Records keep their order. A user record too big for
 * the budget on its own still goes out alone if it fits Kinesis' 1 MiB limit.
 */
export class Aggregator {
  readonly maxBytes: number;
  readonly maxRecords: number;
  private records: UserRecord[] = [];
  private pkIndex = new Map<string, number>();
  private ehkIndex = new Map<string, number>();
  private protobufSize = 0;

  constructor(opts: AggregatorOptions = {}) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_AGGREGATE_BYTES;
    this.maxRecords = opts.maxRecords ?? Number.MAX_SAFE_INTEGER;
    if (!(this.maxBytes > KPL_MAGIC.length + MD5_LENGTH && this.maxBytes <= KINESIS_MAX_RECORD_BYTES)) {
      throw new RangeError(`Aggregator maxBytes must be in ${KPL_MAGIC.length + MD5_LENGTH + 1}..1048576`);
    }
    if (!(this.maxRecords >= 1)) throw new RangeError('Aggregator maxRecords must be >= 1');
  }

  /** User records in the open aggregate. */
  get count(): number {
    return this.records.length;
  }

  /** Size in bytes the open aggregate would have if flushed now (0 when empty). */
  get size(): number {
    return this.records.length === 0 ? 0 : KPL_MAGIC.length + this.protobufSize + MD5_LENGTH;
  }

  /** Bytes the open aggregate grows by if `record` is added. */
  private growth(record: UserRecord): number {
    let extra = 0;
    let pk = this.pkIndex.get(record.partitionKey);
    if (pk === undefined) {
      pk = this.pkIndex.size;
      extra += delimitedSize(Buffer.byteLength(record.partitionKey, 'utf8'));
    }
    let ehk: number | undefined;
    if (record.explicitHashKey !== undefined) {
      ehk = this.ehkIndex.get(record.explicitHashKey);
      if (ehk === undefined) {
        ehk = this.ehkIndex.size;
        extra += delimitedSize(Buffer.byteLength(record.explicitHashKey, 'utf8'));
      }
    }
    return extra + delimitedSize(recordBodySize(pk, ehk, record.data.length));
  }

  add(record: UserRecord): AggregatedOutput | undefined {
    let closed: AggregatedOutput | undefined;
    if (this.records.length > 0) {
      const wouldBe = KPL_MAGIC.length + this.protobufSize + this.growth(record) + MD5_LENGTH;
      if (wouldBe > this.maxBytes || this.records.length >= this.maxRecords) closed = this.flush();
    }
    const alone = KPL_MAGIC.length + this.growth(record) + MD5_LENGTH;
    if (this.records.length === 0 && alone > KINESIS_MAX_RECORD_BYTES) {
      throw new RangeError(
        `a user record of ${record.data.length} bytes cannot fit in a 1 MiB Kinesis record`,
      );
    }
    this.protobufSize += this.growth(record);
    if (!this.pkIndex.has(record.partitionKey)) this.pkIndex.set(record.partitionKey, this.pkIndex.size);
    if (record.explicitHashKey !== undefined && !this.ehkIndex.has(record.explicitHashKey)) {
      this.ehkIndex.set(record.explicitHashKey, this.ehkIndex.size);
    }
    this.records.push(record);
    return closed;
  }

  flush(): AggregatedOutput | undefined {
    const first = this.records[0];
    if (first === undefined) return undefined;
    const data = encodeAggregatedRecord(this.records);
    const out: AggregatedOutput = {
      partitionKey: first.partitionKey,
      explicitHashKey: first.explicitHashKey,
      data,
      userRecords: this.records.length,
    };
    this.records = [];
    this.pkIndex = new Map();
    this.ehkIndex = new Map();
    this.protobufSize = 0;
    return out;
  }
}
