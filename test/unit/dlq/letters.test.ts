import { expect } from 'chai';
import {
  checkRedrive,
  DlqUsageError,
  formatLetterTable,
  isEntryId,
  isFiltering,
  letterJson,
  listOption,
  matchesFilter,
  parseEntry,
  parseLimit,
  parseTimeOption,
  seqCell,
  TABLE_MESSAGE_MAX,
  type RedriveCheckContext,
} from '../../../src/dlq/letters';
import { bytesToJson, decodeFrame, frameToJson } from '../../../src/sbe';
import { encodeMessage } from '../../../src/sbe/encoder';
import type { TradesStreamEvent } from '../../../src/sbe/messages';

const NOW_MS = 1_765_000_000_000;

function trade(fields: Partial<TradesStreamEvent> = {}): TradesStreamEvent {
  return {
    message: 'TradesStreamEvent',
    eventTime: BigInt(NOW_MS) * 1000n,
    transactTime: BigInt(NOW_MS) * 1000n,
    priceExponent: -8,
    qtyExponent: -8,
    trades: [
      {
        id: 7n,
        priceMantissa: 5_000_000_000_000n,
        qtyMantissa: 100_000_000n,
        isBuyerMaker: false,
        isBestMatch: true,
      },
    ],
    symbol: 'BTCUSDT',
    ...fields,
  };
}

/** The fields StateWriter.deadLetter writes, in its order (error_code first: lua/dead-letter-3.lua). */
function flat(fields: Record<string, string>): string[] {
  return Object.entries(fields).flat();
}

const FRAME = encodeMessage(trade());
const FIELDS = {
  error_code: 'FUTURE_TIME',
  shard: 'shardId-000000000001',
  sequence_number: '49650000000000000000000000000000000000000000000000000001',
  sub_sequence_number: '2',
  frame_index: '3',
  partition_key: 'BTCUSDT',
  symbol: 'BTCUSDT',
  error: 'transactTime: 1 us is 600 s ahead',
  data_base64: FRAME.toString('base64'),
  arrival_ms: '1765000000123',
};

const context: RedriveCheckContext = {
  clock: { nowUs: BigInt(NOW_MS) * 1000n, maxFutureSkewUs: 5_000_000n },
  symbols: new Set(['BTCUSDT']),
  unlisted: 'skip',
};

describe('dead letters (src/dlq/letters.ts)', () => {
  describe('parseEntry', () => {
    it('reads every field StateWriter writes; the time is the entry id', () => {
      const e = parseEntry('1765000000456-2', flat(FIELDS));
      expect(e).to.deep.equal({
        id: '1765000000456-2',
        timeMs: 1765000000456,
        errorCode: 'FUTURE_TIME',
        error: 'transactTime: 1 us is 600 s ahead',
        symbol: 'BTCUSDT',
        shard: 'shardId-000000000001',
        sequenceNumber: FIELDS.sequence_number,
        subSequenceNumber: 2,
        frameIndex: 3,
        partitionKey: 'BTCUSDT',
        dataBase64: FRAME.toString('base64'),
        arrivalMs: 1765000000123,
      });
    });

    it('never throws: missing symbol and arrival (written empty) read as absent, missing fields as empty', () => {
      const e = parseEntry('5-0', ['error_code', 'TRUNCATED', 'arrival_ms', '', 'frame_index', 'x']);
      expect(e.symbol).to.equal(undefined);
      expect(e.arrivalMs).to.equal(undefined);
      expect(e.frameIndex).to.equal(0);
      expect(e.shard).to.equal('');
      expect(e.dataBase64).to.equal('');
      expect(e.timeMs).to.equal(5);
    });
  });

  describe('filters', () => {
    const e = parseEntry('1765000000456-0', flat(FIELDS));
    it('every given part must match; codes and symbols match any of theirs', () => {
      expect(matchesFilter(e, {})).to.equal(true);
      expect(matchesFilter(e, { codes: new Set(['BAD_PRICE', 'FUTURE_TIME']) })).to.equal(true);
      expect(matchesFilter(e, { codes: new Set(['BAD_PRICE']) })).to.equal(false);
      expect(matchesFilter(e, { symbols: new Set(['ETHUSDT']) })).to.equal(false);
      expect(matchesFilter(e, { codes: new Set(['FUTURE_TIME']), symbols: new Set(['ETHUSDT']) })).to.equal(
        false,
      );
      expect(matchesFilter(e, { sinceMs: 1765000000456, untilMs: 1765000000456 })).to.equal(true);
      expect(matchesFilter(e, { sinceMs: 1765000000457 })).to.equal(false);
      expect(matchesFilter(e, { untilMs: 1765000000455 })).to.equal(false);
    });

    it('a letter without a symbol never matches a symbol filter', () => {
      const noSymbol = parseEntry('1-0', ['error_code', 'TRUNCATED']);
      expect(matchesFilter(noSymbol, { symbols: new Set(['BTCUSDT']) })).to.equal(false);
    });

    it('list options: repeatable and comma-separated, upper-cased, empty parts dropped', () => {
      expect([...listOption(['future_time,BAD_PRICE', ' bad_qty ', ','])!]).to.deep.equal([
        'FUTURE_TIME',
        'BAD_PRICE',
        'BAD_QTY',
      ]);
      expect(listOption(undefined)).to.equal(undefined);
      expect(listOption([','])).to.equal(undefined);
      expect(isFiltering({})).to.equal(false);
      expect(isFiltering({ untilMs: 0 })).to.equal(true);
    });
  });

  describe('option values', () => {
    it('times: ms since the epoch, ISO 8601 (UTC unless an offset is given), or a duration before now', () => {
      expect(parseTimeOption('--since', '1765000000000', NOW_MS)).to.equal(1765000000000);
      expect(parseTimeOption('--since', '2026-12-06', NOW_MS)).to.equal(Date.UTC(2026, 11, 6));
      expect(parseTimeOption('--since', '2026-12-06T10:00:00Z', NOW_MS)).to.equal(Date.UTC(2026, 11, 6, 10));
      expect(parseTimeOption('--since', '2026-12-06T10:00', NOW_MS)).to.equal(Date.UTC(2026, 11, 6, 10));
      expect(parseTimeOption('--since', '2026-12-06 10:00:00+01:00', NOW_MS)).to.equal(
        Date.UTC(2026, 11, 6, 9),
      );
      expect(parseTimeOption('--since', '30m', NOW_MS)).to.equal(NOW_MS - 1_800_000);
      expect(parseTimeOption('--until', '2h', NOW_MS)).to.equal(NOW_MS - 7_200_000);
      expect(parseTimeOption('--since', '7d', NOW_MS)).to.equal(NOW_MS - 7 * 86_400_000);
      expect(parseTimeOption('--since', '10s', NOW_MS)).to.equal(NOW_MS - 10_000);
    });

    it('a bad time names the option and the value', () => {
      for (const bad of ['yesterday', '30x', '2026-13-45', '', '-5m']) {
        expect(() => parseTimeOption('--until', bad, NOW_MS))
          .to.throw(DlqUsageError)
          .with.property('message')
          .that.matches(new RegExp(`^--until: expected ms since the epoch, .* got "${bad}"$`));
      }
    });

    it('--limit is a positive integer; entry ids are <ms>-<seq>', () => {
      expect(parseLimit('25')).to.equal(25);
      for (const bad of ['0', '-1', '1.5', 'ten', '']) {
        expect(() => parseLimit(bad)).to.throw(
          DlqUsageError,
          `--limit: expected a positive integer, got "${bad}"`,
        );
      }
      expect(isEntryId('1765000000456-0')).to.equal(true);
      expect(isEntryId('1765000000456')).to.equal(false);
      expect(isEntryId('abc-0')).to.equal(false);
    });
  });

  describe('output', () => {
    it('letterJson: the Redis field names, the ISO time, the byte count, null for the absent', () => {
      const json = letterJson(parseEntry('1765000000456-0', flat(FIELDS)));
      expect(json).to.deep.equal({
        id: '1765000000456-0',
        time: '2025-12-06T05:46:40.456Z',
        error_code: 'FUTURE_TIME',
        error: FIELDS.error,
        symbol: 'BTCUSDT',
        shard: FIELDS.shard,
        sequence_number: FIELDS.sequence_number,
        sub_sequence_number: 2,
        frame_index: 3,
        partition_key: 'BTCUSDT',
        arrival_ms: 1765000000123,
        bytes: FRAME.length,
        data_base64: FIELDS.data_base64,
      });
      expect(letterJson(parseEntry('1-0', ['error_code', 'EMPTY']))).to.include({
        symbol: null,
        arrival_ms: null,
        bytes: 0,
      });
    });

    it('the table: a header, aligned columns, SEQ with sub-sequence and frame index when not 0, message clipped', () => {
      const long = 'x'.repeat(TABLE_MESSAGE_MAX + 20);
      const a = parseEntry('1765000000456-0', flat({ ...FIELDS, error: `line one\nline two` }));
      const b = parseEntry(
        '1765000000999-1',
        flat({ error_code: 'TRUNCATED', shard: 's0', sequence_number: '42', error: long }),
      );
      expect(seqCell(a)).to.equal(`${FIELDS.sequence_number}/2#3`);
      expect(seqCell(b)).to.equal('42');
      const lines = formatLetterTable([a, b]).split('\n');
      expect(lines).to.have.length(4);
      expect(lines[3]).to.equal('');
      expect(lines[0]).to.match(/^ID +TIME +CODE +SYMBOL +SHARD +SEQ +MESSAGE$/);
      expect(lines[1])
        .to.contain('FUTURE_TIME')
        .and.contain('BTCUSDT')
        .and.match(/line one line two$/);
      expect(lines[2])
        .to.contain('TRUNCATED    -')
        .and.match(new RegExp(`x{${TABLE_MESSAGE_MAX - 3}}\\.\\.\\.$`));
      expect(lines[1]!.indexOf('line one')).to.equal(lines[0]!.indexOf('MESSAGE'));
      expect(lines[2]!.indexOf('TRUNCATED')).to.equal(lines[0]!.indexOf('CODE'));
      expect(formatLetterTable([])).to.equal('ID  TIME  CODE  SYMBOL  SHARD  SEQ  MESSAGE\n');
    });
  });

  describe('checkRedrive: what the processors would do with the bytes now', () => {
    it('a valid frame of a listed symbol passes', () => {
      expect(checkRedrive(FRAME, context)).to.deep.equal({ ok: true, frames: 1 });
      expect(checkRedrive(Buffer.concat([FRAME, FRAME]), context)).to.deep.equal({ ok: true, frames: 2 });
    });

    it('a future-dated frame is refused under the skew and passes under a larger one (the config fix)', () => {
      const future = encodeMessage(trade({ transactTime: BigInt(NOW_MS + 600_000) * 1000n }));
      const refused = checkRedrive(future, context);
      expect(refused).to.include({ ok: false, code: 'FUTURE_TIME' });
      expect(
        checkRedrive(future, { ...context, clock: { ...context.clock, maxFutureSkewUs: 3_600_000_000n } }),
      ).to.deep.equal({ ok: true, frames: 1 });
    });

    it('undecodable bytes (the rest of a record) are refused with the decode code', () => {
      const check = checkRedrive(FRAME.subarray(0, 20), context);
      expect(check).to.include({ ok: false, code: 'TRUNCATED' });
      expect(check.ok ? '' : check.reason).to.match(/^the bytes do not decode \(TRUNCATED: /);
      expect(checkRedrive(Buffer.alloc(0), context)).to.include({ ok: false, code: 'EMPTY' });
      const second = checkRedrive(Buffer.concat([FRAME, Buffer.from('garbage!')]), context);
      expect(second.ok ? '' : second.reason).to.match(/^frame 1: the bytes do not decode/);
    });

    it('an invalid value is refused with its validation code; an unlisted symbol under skip too', () => {
      const badId = encodeMessage(
        trade({
          trades: [{ id: -5n, priceMantissa: 1n, qtyMantissa: 1n, isBuyerMaker: false, isBestMatch: true }],
        }),
      );
      expect(checkRedrive(badId, context)).to.include({ ok: false, code: 'BAD_TRADE_ID' });
      const eth = encodeMessage(trade({ symbol: 'ETHUSDT' }));
      expect(checkRedrive(eth, context)).to.include({ ok: false, code: 'UNLISTED_SYMBOL' });
      expect(checkRedrive(eth, { ...context, unlisted: 'apply' })).to.deep.equal({ ok: true, frames: 1 });
    });
  });

  describe('bytesToJson (the decode view of `dlq show`)', () => {
    it("a frame: its offset and the decode command's JSON view", () => {
      expect(bytesToJson(FRAME)).to.deep.equal([{ offset: 0, ...frameToJson(decodeFrame(FRAME)) }]);
    });

    it('as far as the bytes decode: the good frame, then the error with the raw header when readable', () => {
      const bad = Buffer.from(FRAME);
      bad.writeUInt16LE(9, 4); // schemaId 9
      const view = bytesToJson(Buffer.concat([FRAME, bad]));
      expect(view).to.have.length(2);
      expect(view[0]).to.include({ offset: 0, message: 'TradesStreamEvent' });
      expect(view[1]).to.deep.include({
        offset: FRAME.length,
        length: FRAME.length,
        header: { blockLength: 18, templateId: 10000, schemaId: 9, version: 0 },
      });
      expect((view[1]!.error as { code: string }).code).to.equal('SCHEMA_MISMATCH');
      expect(bytesToJson(Buffer.from([1, 2, 3]))[0]).to.not.have.property('header');
    });
  });
});
