import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { CsvParseError, detectLayout, parseTradesLines, readTradesCsv } from '../../../../src/dev/replay/csv';
import type { TradesCsvOptions } from '../../../../src/dev/replay/csv';
import type { TradesStreamEvent } from '../../../../src/sbe/messages';
import { sharedDir } from '../../../helpers/paths';

const TARDIS_FILE = path.join(
  sharedDir,
  'data',
  'btcusdt-trades',
  'nautilus_tardis_binance-futures_btcusdt_trades.csv',
);

async function collect(iter: AsyncIterable<TradesStreamEvent>): Promise<TradesStreamEvent[]> {
  const out: TradesStreamEvent[] = [];
  for await (const ev of iter) out.push(ev);
  return out;
}

function lines(
  text: string,
  opts: TradesCsvOptions = {},
  fileLabel = 'trades.csv',
): Promise<TradesStreamEvent[]> {
  return collect(parseTradesLines(text.split('\n'), { ...opts, fileLabel }));
}

async function rejection(p: Promise<unknown>): Promise<CsvParseError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(CsvParseError);
    return err as CsvParseError;
  }
  throw new Error('expected a CsvParseError');
}

// Binance's downloadable trade files (data.binance.vision) have no header; times in ms (older) or us (2025+).
const BINANCE_MS = [
  '3570000001,61234.56000000,0.00100000,61.23456000,1714521600123,True,True',
  '3570000002,61234.57000000,0.25000000,15308.64250000,1714521600124,False,True',
  '3570000003,61234.50000000,1.00000000,61234.50000000,1714521600999,true,true',
].join('\n');

const BINANCE_US = [
  '4000000001,95000.01000000,0.01000000,950.00010000,1735689600000001,False,True',
  '4000000002,95000.00000000,0.02000000,1900.00000000,1735689600000002,True,True',
].join('\r\n');

describe('replay/csv', () => {
  describe('format detection', () => {
    it('recognises a Tardis header, a Binance header and headerless Binance rows', () => {
      expect(detectLayout('exchange,symbol,timestamp,local_timestamp,id,side,price,amount', 'f')).to.include({
        format: 'tardis',
        hasHeader: true,
      });
      expect(detectLayout('id,price,qty,quote_qty,time,is_buyer_maker,is_best_match', 'f')).to.include({
        format: 'binance',
        hasHeader: true,
      });
      expect(detectLayout('1,2.5,1,2.5,1714521600123,True,True', 'f')).to.include({
        format: 'binance',
        hasHeader: false,
      });
    });

    it('refuses an unknown first line, naming the file and line 1', () => {
      expect(() => detectLayout('a,b,c', 'x.csv')).to.throw(
        CsvParseError,
        /^x\.csv line 1: unrecognised trades CSV/,
      );
      expect(() => detectLayout('x,2.5,1,2.5,1714521600123,True,True', 'x.csv')).to.throw(CsvParseError);
      expect(() => detectLayout('id,price', 'x.csv', 'tardis')).to.throw(CsvParseError, /Tardis header/);
    });
  });

  describe('Tardis format', () => {
    it('reads the 9,999-trade BTCUSDT file with exact decimals and consecutive ids', async () => {
      const events = await collect(readTradesCsv(TARDIS_FILE));
      expect(events).to.have.length(9999);
      const first = events[0]!;
      expect(first).to.deep.equal({
        message: 'TradesStreamEvent',
        eventTime: 1582329602111000n,
        transactTime: 1582329602111000n,
        priceExponent: -8,
        qtyExponent: -8,
        trades: [
          {
            id: 42377944n,
            priceMantissa: 968200000000n,
            qtyMantissa: 13200000n,
            isBuyerMaker: false,
            isBestMatch: true,
          },
        ],
        symbol: 'BTCUSDT',
      });
      expect(events[3]!.trades[0]!.priceMantissa).to.equal(968219000000n); // 9682.19
      let prev = first.trades[0]!.id;
      let sells = 0;
      for (const ev of events.slice(1)) {
        expect(ev.trades).to.have.length(1);
        expect(ev.trades[0]!.id).to.equal(prev + 1n);
        prev = ev.trades[0]!.id;
        if (ev.trades[0]!.isBuyerMaker) sells++;
      }
      expect(sells).to.be.greaterThan(1000);
    });

    it("maps side 'sell' (taker sold) to isBuyerMaker = true and takes the symbol from the file", async () => {
      const [ev] = await lines(
        'exchange,symbol,timestamp,local_timestamp,id,side,price,amount\nbinance,ethusdt,1600000000000001,1600000000000009,7,sell,350.5,2',
        { symbol: 'IGNORED' },
      );
      expect(ev!.symbol).to.equal('ETHUSDT');
      expect(ev!.eventTime).to.equal(1600000000000001n);
      expect(ev!.trades[0]).to.deep.include({ id: 7n, priceMantissa: 35050000000n, isBuyerMaker: true });
    });

    it('uses the configured exponents', async () => {
      const [ev] = await lines(
        'exchange,symbol,timestamp,local_timestamp,id,side,price,amount\nb,BTCUSDT,1,2,3,buy,9682.19,0.132',
        { priceExponent: -2, qtyExponent: -3 },
      );
      expect(ev!.priceExponent).to.equal(-2);
      expect(ev!.qtyExponent).to.equal(-3);
      expect(ev!.trades[0]).to.deep.include({ priceMantissa: 968219n, qtyMantissa: 132n });
    });
  });

  describe('Binance format', () => {
    it('reads headerless rows with ms times (converted to us) and the given symbol', async () => {
      const events = await lines(BINANCE_MS, { symbol: 'BTCUSDT' });
      expect(events).to.have.length(3);
      expect(events[0]).to.deep.equal({
        message: 'TradesStreamEvent',
        eventTime: 1714521600123000n,
        transactTime: 1714521600123000n,
        priceExponent: -8,
        qtyExponent: -8,
        trades: [
          {
            id: 3570000001n,
            priceMantissa: 6123456000000n,
            qtyMantissa: 100000n,
            isBuyerMaker: true,
            isBestMatch: true,
          },
        ],
        symbol: 'BTCUSDT',
      });
      expect(events.map((e) => e.trades[0]!.isBuyerMaker)).to.deep.equal([true, false, true]);
    });

    it('reads us times as they are, CRLF line ends and a header line, from a file', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'replay-csv-'));
      try {
        const file = path.join(dir, 'BTCUSDT-trades-2025-01-01.csv');
        fs.writeFileSync(
          file,
          `id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\r\n${BINANCE_US}\r\n`,
        );
        const events = await collect(readTradesCsv(file, { symbol: 'BTCUSDT', format: 'binance' }));
        expect(events.map((e) => e.eventTime)).to.deep.equal([1735689600000001n, 1735689600000002n]);
        expect(events[1]!.trades[0]).to.deep.include({ priceMantissa: 9500000000000n, isBuyerMaker: true });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('needs a symbol', async () => {
      const err = await rejection(lines(BINANCE_MS));
      expect(err.message).to.match(/trades\.csv line 1: the Binance trades format has no symbol column/);
    });
  });

  describe('bad rows', () => {
    const header = 'exchange,symbol,timestamp,local_timestamp,id,side,price,amount';
    const good = 'binance,BTCUSDT,1582329602111000,1582329602418379,42377944,buy,9682,0.132';

    it('names the file, line, column and value', async () => {
      const text = [
        header,
        good,
        good,
        'binance,BTCUSDT,1582329602111000,1582329602418379,42377946,buy,abc,0.1',
      ];
      const err = await rejection(lines(text.join('\n')));
      expect(err.message).to.equal('trades.csv line 4, column price: "abc" is not a decimal');
      expect(err).to.include({ file: 'trades.csv', line: 4, column: 'price', value: 'abc' });
    });

    it('refuses inexact decimals, bad sides, ids, times, booleans and column counts', async () => {
      const cases: [string, RegExp][] = [
        [
          `${header}\nb,BTCUSDT,1,2,3,buy,1.123456789,1`,
          /line 2, column price: "1.123456789" is not exact at exponent -8/,
        ],
        [
          `${header}\nb,BTCUSDT,1,2,3,buy,1e3,1`,
          /column price: "1e3" is not a decimal \(exponent notation\)/,
        ],
        [`${header}\nb,BTCUSDT,1,2,3,buy,1,0`, /column amount: "0" must be positive/],
        [`${header}\nb,BTCUSDT,1,2,3,hold,1,1`, /column side: "hold" is not a taker side/],
        [`${header}\nb,BTCUSDT,1,2,-3,buy,1,1`, /column id: "-3" is not a non-negative integer/],
        [`${header}\nb,BTCUSDT,x,2,3,buy,1,1`, /column timestamp: "x"/],
        [`${header}\n${good}\nb,BTCUSDT,1,2,3,buy,1`, /line 3: expected 8 columns, got 7/],
      ];
      for (const [text, pattern] of cases) {
        const err = await rejection(lines(text));
        expect(err.message).to.match(pattern);
      }
      const err = await rejection(lines('1,2.5,1,2.5,1714521600123,maybe,True', { symbol: 'BTCUSDT' }));
      expect(err.message).to.equal(
        'trades.csv line 1, column is_buyer_maker: "maybe" is not a boolean (true/false)',
      );
    });

    it('skips blank lines but counts them in line numbers', async () => {
      const err = await rejection(lines(`${header}\n\n${good}\n\nb,BTCUSDT,1,2,3,buy,??,1`));
      expect(err.line).to.equal(5);
    });

    it('reports the real file name from readTradesCsv', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'replay-csv-'));
      try {
        const file = path.join(dir, 'trades.csv');
        fs.writeFileSync(file, `${header}\n${good}\nb,BTCUSDT,1,2,3,buy,9682,abc\n`);
        const err = await rejection(collect(readTradesCsv(file)));
        expect(err.message).to.equal('trades.csv line 3, column amount: "abc" is not a decimal');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
