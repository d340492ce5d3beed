import { expect } from 'chai';
import {
  Aggregator,
  KPL_MAGIC,
  KplFormatError,
  decodeAggregatedRecord,
  deaggregate,
  encodeAggregatedRecord,
  frameAggregatedRecord,
  varintSize,
} from '../../../src/replay/kpl';
import type { UserRecord } from '../../../src/replay/kpl';
import { Prng } from '../../../src/replay/simulator';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('replay/kpl', () => {
  it('encodes a one-record aggregate byte for byte (hand-computed protobuf, MD5 from an independent tool)', () => {
    const out = encodeAggregatedRecord([{ partitionKey: 'BTCUSDT', data: Buffer.from([1, 2, 3]) }]);
    const expected = hex(`
      f3899ac2
      0a 07 42 54 43 55 53 44 54
      1a 07 08 00 1a 03 01 02 03
      044a82a021fd89cbe3c94a81cf8c7395`);
    expect(out.toString('hex')).to.equal(expected.toString('hex'));
  });

  it('encodes key tables once, explicit hash keys and an empty data field exactly', () => {
    const out = encodeAggregatedRecord([
      { partitionKey: 'A', explicitHashKey: '123', data: Buffer.from([0xff]) },
      { partitionKey: 'B', data: Buffer.alloc(0) },
      { partitionKey: 'A', explicitHashKey: '123', data: Buffer.from([0xff]) },
    ]);
    const expected = hex(`
      f3899ac2
      0a 01 41  0a 01 42  12 03 31 32 33
      1a 07 08 00 10 00 1a 01 ff
      1a 04 08 01 1a 00
      1a 07 08 00 10 00 1a 01 ff`);
    expect(out.subarray(0, expected.length).toString('hex')).to.equal(expected.toString('hex'));
    expect(out.length).to.equal(expected.length + 16);

    const two = encodeAggregatedRecord([
      { partitionKey: 'A', explicitHashKey: '123', data: Buffer.from([0xff]) },
      { partitionKey: 'B', data: Buffer.alloc(0) },
    ]);
    expect(two.subarray(-16).toString('hex')).to.equal('58313fcdcd8b76611fb84d57fe7f9fd9');
  });

  it('round-trips records with multi-byte varints', () => {
    const rng = new Prng(1);
    const records: UserRecord[] = [];
    for (let i = 0; i < 300; i++) {
      const data = Buffer.alloc(rng.int(400));
      for (let j = 0; j < data.length; j++) data[j] = rng.int(256);
      records.push({
        partitionKey: `key-${i % 150}`,
        explicitHashKey: i % 3 === 0 ? String(2n ** 127n + BigInt(i)) : undefined,
        data,
      });
    }
    const decoded = decodeAggregatedRecord(encodeAggregatedRecord(records));
    expect(decoded).to.have.length(records.length);
    decoded.forEach((r, i) => {
      expect(r.partitionKey).to.equal(records[i]!.partitionKey);
      expect(r.explicitHashKey).to.equal(records[i]!.explicitHashKey);
      expect(r.data.equals(records[i]!.data)).to.equal(true);
    });
    expect(varintSize(127)).to.equal(1);
    expect(varintSize(128)).to.equal(2);
    expect(varintSize(2 ** 21)).to.equal(4);
  });

  it('verifies the MD5: strict decode throws, deaggregate treats the bytes as one plain record', () => {
    const good = encodeAggregatedRecord([{ partitionKey: 'K', data: Buffer.from('hello') }]);
    const bad = Buffer.from(good);
    bad[10] = bad[10]! ^ 0x01;
    expect(() => decodeAggregatedRecord(bad)).to.throw(KplFormatError, /MD5/);
    const plain = deaggregate(bad, 'outer');
    expect(plain).to.have.length(1);
    expect(plain[0]!.partitionKey).to.equal('outer');
    expect(plain[0]!.data.equals(bad)).to.equal(true);
    expect(deaggregate(good, 'outer')[0]!.data.toString()).to.equal('hello');
    expect(deaggregate(Buffer.from('plain SBE bytes'), 'pk')).to.have.length(1);
    expect(() => decodeAggregatedRecord(Buffer.from([1, 2, 3, 4]))).to.throw(KplFormatError, /magic/);
  });

  it('skips unknown fields (e.g. tags) and rejects malformed protobuf', () => {
    // Record with an extra field 4 (tags, length-delimited) and an unknown top-level varint field 9.
    const protobuf = hex('0a 01 4b  1a 0b 08 00 1a 02 68 69 22 03 0a 01 74  48 05');
    const records = decodeAggregatedRecord(frameAggregatedRecord(protobuf));
    expect(records).to.have.length(1);
    expect(records[0]!.data.toString()).to.equal('hi');
    expect(() => decodeAggregatedRecord(frameAggregatedRecord(hex('1a 05 08 00 1a 09 00')))).to.throw(
      KplFormatError,
      /runs past the end/,
    );
    expect(() => decodeAggregatedRecord(frameAggregatedRecord(hex('0a 01 4b 1a 04 08 03 1a 00')))).to.throw(
      KplFormatError,
      /partition_key_index 3 out of range/,
    );
    expect(() => decodeAggregatedRecord(frameAggregatedRecord(hex('0a 01 4b 1a 02 1a 00')))).to.throw(
      KplFormatError,
      /without partition_key_index/,
    );
  });

  it('aggregates within the byte budget, predicting each size exactly and keeping order', () => {
    const rng = new Prng(2);
    const agg = new Aggregator({ maxBytes: 4096 });
    const inputs: Buffer[] = [];
    const outputs: Buffer[] = [];
    const take = (data: Buffer, predicted: number): void => {
      expect(data.length).to.equal(predicted);
      expect(data.length).to.be.at.most(4096);
      outputs.push(data);
    };
    for (let i = 0; i < 5000; i++) {
      const data = Buffer.alloc(20 + rng.int(700), i % 256);
      inputs.push(data);
      const sizeBefore = agg.size;
      const closed = agg.add({ partitionKey: i % 7 === 0 ? 'ETHUSDT' : 'BTCUSDT', data });
      if (closed !== undefined) take(closed.data, sizeBefore);
    }
    const sizeBefore = agg.size;
    const last = agg.flush();
    if (last !== undefined) take(last.data, sizeBefore);
    expect(agg.flush()).to.equal(undefined);
    expect(agg.size).to.equal(0);
    const roundTrip = outputs.flatMap((o) => decodeAggregatedRecord(o).map((r) => r.data));
    expect(roundTrip).to.have.length(inputs.length);
    roundTrip.forEach((d, i) => expect(d.equals(inputs[i]!)).to.equal(true));
    // The budget is used well: all but the last aggregate are more than ~80% full.
    for (const o of outputs.slice(0, -1)) expect(o.length).to.be.greaterThan(4096 - 800);
  });

  it('reports the first key, closes at maxRecords and sends an oversized record alone', () => {
    const agg = new Aggregator({ maxBytes: 100, maxRecords: 2 });
    expect(agg.add({ partitionKey: 'P1', data: Buffer.alloc(10) })).to.equal(undefined);
    expect(agg.add({ partitionKey: 'P2', data: Buffer.alloc(10) })).to.equal(undefined);
    const closed = agg.add({ partitionKey: 'P3', data: Buffer.alloc(500) });
    expect(closed).to.deep.include({ partitionKey: 'P1', userRecords: 2 });
    const big = agg.flush()!;
    expect(big.userRecords).to.equal(1);
    expect(big.data.length).to.be.greaterThan(500);
    expect(big.data.subarray(0, 4).equals(KPL_MAGIC)).to.equal(true);
    expect(() => new Aggregator({ maxBytes: 2 * 1024 * 1024 })).to.throw(RangeError);
    expect(() => new Aggregator().add({ partitionKey: 'P', data: Buffer.alloc(1024 * 1024) })).to.throw(
      RangeError,
    );
  });
});
