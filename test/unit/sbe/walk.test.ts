import { expect } from 'chai';
import { walkFrames } from '../../../src/sbe/decoder';
import { encodeFrames, encodeMessage } from '../../../src/sbe/encoder';
import type { TradesStreamEvent } from '../../../src/sbe/messages';

// walkFrames: every frame of a record decoded or named as damaged, never a throw for bad bytes; a damaged frame
// whose extent is known does not take its neighbours with it.

function trade(id: bigint): TradesStreamEvent {
  return {
    message: 'TradesStreamEvent',
    eventTime: 2n,
    transactTime: 1n,
    priceExponent: -2,
    qtyExponent: -5,
    trades: [{ id, priceMantissa: 100n, qtyMantissa: 1n, isBuyerMaker: true, isBestMatch: true }],
    symbol: 'BTCUSDT',
  };
}

const summary = (buf: Buffer) =>
  walkFrames(buf).map((i) => (i.ok ? ['ok', i.start, i.end] : [i.error.code, i.start, i.end]));

describe('sbe/walkFrames', () => {
  const one = encodeMessage(trade(1n));
  const n = one.length;

  it('walks valid frames by their lengths', () => {
    expect(summary(encodeFrames([trade(1n), trade(2n)]))).to.deep.equal([
      ['ok', 0, n],
      ['ok', n, 2 * n],
    ]);
  });

  it('a bad enum byte or a symbol that is not UTF-8: that frame alone, the next ones decode', () => {
    const badEnum = encodeMessage(trade(2n));
    badEnum[n - 9] = 2;
    const badSymbol = encodeMessage(trade(3n));
    badSymbol[n - 1] = 0xff;
    expect(summary(Buffer.concat([one, badEnum, badSymbol, one]))).to.deep.equal([
      ['ok', 0, n],
      ['INVALID_ENUM', n, 2 * n],
      ['INVALID_SYMBOL', 2 * n, 3 * n],
      ['ok', 3 * n, 4 * n],
    ]);
  });

  it('a frame whose lengths cannot be trusted takes the rest of the record', () => {
    const badSchema = encodeMessage(trade(2n));
    badSchema.writeUInt16LE(9, 4);
    const buf = Buffer.concat([one, badSchema, one]);
    expect(summary(buf)).to.deep.equal([
      ['ok', 0, n],
      ['SCHEMA_MISMATCH', n, buf.length],
    ]);
    expect(summary(one.subarray(0, n - 3))).to.deep.equal([['TRUNCATED', 0, n - 3]]);
  });

  it('an empty record is one EMPTY item', () => {
    expect(summary(Buffer.alloc(0))).to.deep.equal([['EMPTY', 0, 0]]);
  });
});
