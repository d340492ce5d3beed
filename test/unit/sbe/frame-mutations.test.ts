// The fault tests' poison-record generator (test/helpers/frame-mutations.ts): its labels come from the documented
// wire format and validation rules, not from the decoder; here they are checked against the real processing rules
// in-process (walkFrames + validateMessage, and the shard processor's prepare()), and the generator's own copy of
// the layout against the decoder's tables.
import { expect } from 'chai';
import { DEFAULT_MAX_FUTURE_SKEW_MS, VALIDATION_CODES, validateMessage } from '../../../src/events/validate';
import { ShardProcessor, type BatchWriter } from '../../../src/kcl/shard-processor';
import { silentLogger } from '../../../src/logging/logger';
import { deaggregate } from '../../../src/replay/kpl';
import { LAYOUTS, MAX_LEVELS_PER_SIDE, MAX_TRADES_PER_EVENT, walkFrames } from '../../../src/sbe';
import type { FieldLayout } from '../../../src/sbe';
import {
  DEFAULT_WEIGHTS,
  FrameMutator,
  MAX_LEVELS,
  MAX_TRADES,
  MUTATION_KINDS,
  TEMPLATES,
  countByCode,
  generateBadRecords,
  mapFrame,
  simulatedBaseFrames,
  type BadRecord,
} from '../../helpers/frame-mutations';

const BASE_SYMBOLS = ['SOLUSDT', 'BNBUSDT', 'ÄÖÜUSDT'];
const SEED = 20261125;
const RECORDS = 30_000;

/** What the processing rules make of one record: its dead letters and how many frames decoded valid. */
interface Outcome {
  readonly deadLetters: { code: string; frameIndex: number; dataHex: string; symbol: string | undefined }[];
  readonly valid: number;
}

/** walkFrames, then validateMessage on each decoded frame (the processor's steps 1 and 2), at the real clock. */
function applyRules(data: Buffer): Outcome {
  const clock = {
    nowUs: BigInt(Date.now()) * 1000n,
    maxFutureSkewUs: BigInt(DEFAULT_MAX_FUTURE_SKEW_MS) * 1000n,
  };
  const deadLetters: Outcome['deadLetters'] = [];
  let valid = 0;
  for (const [frameIndex, item] of walkFrames(data).entries()) {
    const dataHex = data.subarray(item.start, item.end).toString('hex');
    if (!item.ok) {
      deadLetters.push({ code: item.error.code, frameIndex, dataHex, symbol: undefined });
      continue;
    }
    const failure = validateMessage(item.frame.message, clock);
    if (failure === undefined) valid++;
    else {
      const symbol = failure.code === 'INVALID_SYMBOL' ? undefined : item.frame.message.symbol;
      deadLetters.push({ code: failure.code, frameIndex, dataHex, symbol });
    }
  }
  return { deadLetters, valid };
}

function expectedOutcome(r: BadRecord): Outcome {
  return {
    deadLetters: [
      {
        code: r.expected,
        frameIndex: r.frameIndex,
        dataHex: r.deadLetterData.toString('hex'),
        symbol: r.deadLetterSymbol,
      },
    ],
    valid: r.skipped,
  };
}

/** Non-constant fields of a decoder layout as name -> offset. */
const offsets = (fields: readonly FieldLayout[]) =>
  Object.fromEntries(fields.filter((f) => f.constant !== true).map((f) => [f.name, f.offset]));

describe('frame-mutations generator (fault-test poison records)', function () {
  this.timeout(60000);
  let base: Buffer[];
  let records: BadRecord[];
  before(() => {
    base = simulatedBaseFrames(11, BASE_SYMBOLS, 3000);
    records = generateBadRecords(SEED, RECORDS, base);
  });

  it('knows schema 1:0 as the decoder does (root blocks, field offsets, groups, limits)', () => {
    for (const layout of Object.values(LAYOUTS)) {
      const spec = TEMPLATES.get(layout.templateId);
      expect(spec, layout.name).to.not.equal(undefined);
      expect(spec!.name).to.equal(layout.name);
      expect(spec!.rootBlock).to.equal(layout.blockLength);
      expect(spec!.fields, `${layout.name} root fields`).to.deep.equal(offsets(layout.fields));
      expect(spec!.groups.map((g) => [g.name, g.headerLength, g.entryLength, g.fields])).to.deep.equal(
        layout.groups.map((g) => [g.name, g.headerLength, g.blockLength, offsets(g.fields)]),
      );
    }
    expect(TEMPLATES.size).to.equal(Object.keys(LAYOUTS).length);
    expect(MAX_TRADES).to.equal(MAX_TRADES_PER_EVENT);
    expect(MAX_LEVELS).to.equal(MAX_LEVELS_PER_SIDE);
    for (const frame of base) expect(() => mapFrame(frame)).to.not.throw();
  });

  it('mutates only valid frames: every base frame decodes alone and passes validation', () => {
    for (const [i, frame] of base.entries()) {
      expect(applyRules(frame), `base frame #${i}`).to.deep.equal({ deadLetters: [], valid: 1 });
    }
  });

  it('is deterministic: the same seed and clock give the same records, another seed others', () => {
    const now = Date.now();
    const summary = (rs: BadRecord[]) =>
      rs.map((r) => [
        r.kind,
        r.expected,
        r.data.toString('hex'),
        r.frameIndex,
        r.deadLetterData.toString('hex'),
        r.deadLetterSymbol,
        r.skipped,
      ]);
    const a = generateBadRecords(5, 500, base, now);
    const b = generateBadRecords(5, 500, base, now);
    const c = generateBadRecords(6, 500, base, now);
    expect(summary(a)).to.deep.equal(summary(b));
    expect(a.map((r) => r.data.toString('hex'))).to.not.deep.equal(c.map((r) => r.data.toString('hex')));
  });

  it('labels every record as walkFrames + validateMessage treat it: code, frame index, bytes, valid frames', () => {
    const kinds = new Set(records.map((r) => r.kind));
    expect([...kinds].sort()).to.deep.equal([...MUTATION_KINDS].sort());
    const mismatches: string[] = [];
    for (const [i, r] of records.entries()) {
      let actual: Outcome | string;
      try {
        actual = applyRules(r.data);
      } catch (err) {
        actual = `THREW ${String(err)}`;
      }
      const want = expectedOutcome(r);
      if (JSON.stringify(actual) !== JSON.stringify(want) && mismatches.length < 10) {
        mismatches.push(
          `#${i} ${r.kind}: expected ${JSON.stringify(want)}, got ${JSON.stringify(actual)} ` +
            `(${r.data.toString('hex')})`,
        );
      }
    }
    expect(mismatches).to.deep.equal([]);
    const counts = countByCode(records);
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).to.equal(records.length);
    for (const code of [
      'EMPTY',
      'TRUNCATED',
      'SCHEMA_MISMATCH',
      'UNKNOWN_TEMPLATE',
      'BLOCK_LENGTH_TOO_SMALL',
      'GROUP_COUNT_TOO_LARGE',
      'INVALID_ENUM',
      ...VALIDATION_CODES.filter((c) => c !== 'BAD_LEVELS'),
    ]) {
      expect(counts[code] ?? 0, code).to.be.greaterThan(100);
    }
    // Bad frames between valid ones: dead-lettered alone (valid frames on both sides decode), or with the rest.
    const between = (code: string) => records.filter((r) => r.expected === code && r.frameIndex > 0);
    for (const code of ['INVALID_ENUM', 'INVALID_SYMBOL', 'BAD_PRICE', 'FUTURE_TIME']) {
      expect(
        between(code).filter((r) => r.skipped > r.frameIndex),
        code,
      ).to.not.be.empty;
    }
    expect(between('GROUP_COUNT_TOO_LARGE').filter((r) => r.skipped === r.frameIndex)).to.not.be.empty;
  });

  it('field-level mutations are about a fifth of the records: several thousand in 100,000', () => {
    const field = MUTATION_KINDS.slice(MUTATION_KINDS.indexOf('negative-trade-id'));
    const total = Object.values(DEFAULT_WEIGHTS).reduce((a, b) => a + b, 0);
    const share = field.reduce((n, k) => n + DEFAULT_WEIGHTS[k], 0) / total;
    expect(share).to.be.within(0.15, 0.25);
    const generated = records.filter((r) => (field as readonly string[]).includes(r.kind)).length;
    expect(generated / records.length).to.be.within(share - 0.02, share + 0.02);
  });

  it("the shard processor's prepare() gives each record's one dead letter and skips its valid frames", () => {
    const writer: BatchWriter = { write: () => Promise.reject(new Error('not written here')) };
    const processor = new ShardProcessor({
      stream: 'market-sbe-trade',
      writer,
      writeWithRetry: (w) => w(),
      logger: silentLogger(),
      symbols: { listed: new Set(['BTCUSDT', 'ETHUSDT']), unlisted: 'skip' },
    });
    processor.initialize('shardId-000000000000', 'TRIM_HORIZON');
    const input = records.map((r, i) => ({
      data: r.data.toString('base64'),
      partitionKey: r.partitionKey,
      sequenceNumber: String(1000 + i),
    }));
    const prepared = processor.prepare(input);
    expect(prepared.events).to.have.length(0);
    const actual = prepared.deadLetters.map((d) => [
      d.sequenceNumber,
      d.frameIndex,
      d.errorCode,
      d.dataBase64,
      d.symbol ?? null,
      d.partitionKey,
    ]);
    const expected = records.map((r, i) => [
      String(1000 + i),
      r.frameIndex,
      r.expected,
      r.deadLetterData.toString('base64'),
      r.deadLetterSymbol ?? null,
      r.partitionKey,
    ]);
    const wrong = actual.filter((a, i) => JSON.stringify(a) !== JSON.stringify(expected[i]));
    expect(wrong.slice(0, 5)).to.deep.equal([]);
    expect(actual).to.have.length(expected.length);
    const skipped = Object.values(prepared.unlistedSymbols).reduce((a, b) => a + b, 0);
    expect(skipped).to.equal(records.reduce((n, r) => n + r.skipped, 0));
  });

  it('yields records the KCL hands over unchanged (no valid KPL aggregate among them)', () => {
    const mutator = new FrameMutator(3, base);
    for (let i = 0; i < 2000; i++) {
      const r = i % 4 === 0 ? mutator.of('corrupt-kpl') : mutator.next();
      const users = deaggregate(r.data, r.partitionKey);
      expect(users).to.have.length(1);
      expect(users[0]!.data.equals(r.data)).to.equal(true);
    }
  });
});
