// Encode -> decode round trips over random messages from a seeded PRNG, the exact sizes of the common frames, and the
// values the encoder must refuse.
import { expect } from 'chai';
import {
  MAX_LEVELS_PER_SIDE,
  MAX_TRADES_PER_EVENT,
  SbeEncodeError,
  decodeFrame,
  decodeFrames,
  encodeFrames,
  encodeMessage,
} from '../../../src/sbe';
import type { SbeEncodeErrorCode, SbeMessage, TradesStreamEvent } from '../../../src/sbe';
import { INT64_MAX, INT64_MIN, Rng, randomMessage } from './fixtures';

function roundTrip(msg: SbeMessage): void {
  const bytes = encodeMessage(msg);
  const frame = decodeFrame(bytes);
  expect(frame.message).to.deep.equal(msg);
  expect(frame.frameLength).to.equal(bytes.length);
  expect(frame.header).to.deep.include({ schemaId: 1, version: 0 });
  expect(encodeMessage(frame.message).equals(bytes)).to.equal(true);
}

function encodeError(fn: () => unknown): SbeEncodeError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SbeEncodeError) return err;
    throw err;
  }
  throw new Error('expected an SbeEncodeError, nothing was thrown');
}

const trade: TradesStreamEvent = {
  message: 'TradesStreamEvent',
  eventTime: 1759737767354941n,
  transactTime: 1759737767354588n,
  priceExponent: -8,
  qtyExponent: -8,
  trades: [
    {
      id: 5288446704n,
      priceMantissa: 12346629000000n,
      qtyMantissa: 12000n,
      isBuyerMaker: true,
      isBestMatch: true,
    },
  ],
  symbol: 'BTCUSDT',
};

function levels(n: number, start: bigint): { priceMantissa: bigint; qtyMantissa: bigint }[] {
  return Array.from({ length: n }, (_, i) => ({
    priceMantissa: start + BigInt(i) * 1_000_000n,
    qtyMantissa: BigInt(i),
  }));
}

describe('sbe round trip', () => {
  it('2,000 random messages from a seeded PRNG', () => {
    const rng = new Rng(42);
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const msg = randomMessage(rng);
      seen.add(msg.message);
      roundTrip(msg);
    }
    expect(seen.size).to.equal(4);
  });

  it('random batches through encodeFrames / decodeFrames', () => {
    const rng = new Rng(7);
    for (let i = 0; i < 200; i++) {
      const msgs = Array.from({ length: rng.int(1, 8) }, () => randomMessage(rng));
      const frames = decodeFrames(encodeFrames(msgs));
      expect(frames.map((f) => f.message)).to.deep.equal(msgs);
    }
  });

  it('frame sizes: one BTCUSDT trade 65, best bid/ask 66, 20x20 snapshot 682', () => {
    expect(encodeMessage(trade).length).to.equal(65);
    const bba: SbeMessage = {
      message: 'BestBidAskStreamEvent',
      eventTime: 1n,
      bookUpdateId: 2n,
      priceExponent: -8,
      qtyExponent: -8,
      bidPriceMantissa: 3n,
      bidQtyMantissa: 4n,
      askPriceMantissa: 5n,
      askQtyMantissa: 6n,
      symbol: 'BTCUSDT',
    };
    expect(encodeMessage(bba).length).to.equal(66);
    const snap: SbeMessage = {
      message: 'DepthSnapshotStreamEvent',
      eventTime: 1759737767354941n,
      bookUpdateId: 77453519695n,
      priceExponent: -8,
      qtyExponent: -8,
      bids: levels(20, 12346700000000n),
      asks: levels(20, 12346800000000n),
      symbol: 'BTCUSDT',
    };
    expect(encodeMessage(snap).length).to.equal(682);
    roundTrip(snap);
  });

  it('edge cases: empty groups on both sides, seller-taker trades, extreme int64, every exponent kind', () => {
    const extremes = [INT64_MIN, INT64_MAX, 0n, -1n];
    for (const x of extremes) {
      for (const exponent of [-128, -8, -2, 0, 3, 127]) {
        roundTrip({
          ...trade,
          eventTime: x,
          transactTime: x,
          priceExponent: exponent,
          qtyExponent: -exponent - 1,
        });
        roundTrip({
          ...trade,
          trades: [
            { id: x, priceMantissa: x, qtyMantissa: x, isBuyerMaker: false, isBestMatch: true },
            { id: x, priceMantissa: x, qtyMantissa: x, isBuyerMaker: true, isBestMatch: true },
          ],
        });
        roundTrip({
          message: 'DepthDiffStreamEvent',
          eventTime: x,
          firstBookUpdateId: x,
          lastBookUpdateId: x,
          priceExponent: exponent,
          qtyExponent: exponent,
          bids: [],
          asks: [],
          symbol: '币安人生',
        });
        roundTrip({
          message: 'DepthSnapshotStreamEvent',
          eventTime: x,
          bookUpdateId: x,
          priceExponent: exponent,
          qtyExponent: exponent,
          bids: [],
          asks: [{ priceMantissa: x, qtyMantissa: x }],
          symbol: '',
        });
      }
    }
    roundTrip({ ...trade, trades: [] });
  });

  it('symbols up to 255 UTF-8 bytes, non-ASCII included', () => {
    for (const s of [
      'A'.repeat(255),
      'é'.repeat(127) + 'A',
      '🚀'.repeat(63) + 'abc',
      '\uFEFF',
      'BTC\u0000USDT',
    ]) {
      roundTrip({ ...trade, symbol: s });
    }
  });

  it('the largest groups the decoder accepts', () => {
    roundTrip({
      ...trade,
      trades: Array.from({ length: MAX_TRADES_PER_EVENT }, (_, i) => ({
        id: BigInt(i),
        priceMantissa: 1n,
        qtyMantissa: 2n,
        isBuyerMaker: i % 2 === 0,
        isBestMatch: true as const,
      })),
    });
    roundTrip({
      message: 'DepthDiffStreamEvent',
      eventTime: 1n,
      firstBookUpdateId: 1n,
      lastBookUpdateId: 2n,
      priceExponent: -2,
      qtyExponent: -2,
      bids: levels(MAX_LEVELS_PER_SIDE, 1n),
      asks: levels(MAX_LEVELS_PER_SIDE, 2n),
      symbol: 'BTCUSDT',
    });
  });

  describe('encoder refuses what the wire cannot carry', () => {
    const cases: [string, SbeMessage, SbeEncodeErrorCode, string][] = [
      ['exponent 128', { ...trade, priceExponent: 128 }, 'EXPONENT_OUT_OF_RANGE', 'priceExponent'],
      ['exponent -129', { ...trade, qtyExponent: -129 }, 'EXPONENT_OUT_OF_RANGE', 'qtyExponent'],
      ['exponent 1.5', { ...trade, qtyExponent: 1.5 }, 'EXPONENT_OUT_OF_RANGE', 'qtyExponent'],
      ['eventTime 2^63', { ...trade, eventTime: INT64_MAX + 1n }, 'INT64_OUT_OF_RANGE', 'eventTime'],
      [
        'price below int64',
        { ...trade, trades: [{ ...trade.trades[0]!, priceMantissa: INT64_MIN - 1n }] },
        'INT64_OUT_OF_RANGE',
        'trades[0].priceMantissa',
      ],
      ['symbol of 256 bytes', { ...trade, symbol: 'é'.repeat(128) }, 'SYMBOL_TOO_LONG', 'symbol'],
      ['lone surrogate', { ...trade, symbol: 'BTC\uD800' }, 'INVALID_SYMBOL', 'symbol'],
      [
        'number instead of bigint',
        { ...trade, eventTime: 5 as unknown as bigint },
        'INVALID_FIELD',
        'eventTime',
      ],
      [
        'too many trades',
        { ...trade, trades: Array.from({ length: MAX_TRADES_PER_EVENT + 1 }, () => trade.trades[0]!) },
        'GROUP_TOO_LARGE',
        'trades',
      ],
      [
        'too many levels',
        {
          message: 'DepthSnapshotStreamEvent',
          eventTime: 1n,
          bookUpdateId: 1n,
          priceExponent: 0,
          qtyExponent: 0,
          bids: [],
          asks: levels(MAX_LEVELS_PER_SIDE + 1, 1n),
          symbol: 'X',
        },
        'GROUP_TOO_LARGE',
        'asks',
      ],
      [
        'unknown message',
        { ...trade, message: 'Nope' } as unknown as SbeMessage,
        'UNKNOWN_MESSAGE',
        'message',
      ],
    ];
    for (const [name, msg, code, field] of cases) {
      it(name, () => {
        const err = encodeError(() => encodeMessage(msg));
        expect(err.code).to.equal(code);
        expect(err.field).to.equal(field);
        expect(err.message).to.contain(field);
      });
    }

    it('encodeFrames names the message index', () => {
      const err = encodeError(() => encodeFrames([trade, { ...trade, symbol: 'A'.repeat(256) }]));
      expect(err.field).to.equal('msgs[1].symbol');
      expect(err.code).to.equal('SYMBOL_TOO_LONG');
    });
  });
});
