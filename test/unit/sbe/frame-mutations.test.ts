// The fault tests' poison-record generator (test/helpers/frame-mutations.ts): its labels come from the documented
// wire format, not from the decoder; here they are checked against the decoder, and the generator's own copy of
// the layout against the decoder's tables.
import { expect } from 'chai';
import { deaggregate } from '../../../src/replay/kpl';
import {
  LAYOUTS,
  MAX_LEVELS_PER_SIDE,
  MAX_TRADES_PER_EVENT,
  SbeDecodeError,
  decodeFrames,
} from '../../../src/sbe';
import {
  FrameMutator,
  MAX_LEVELS,
  MAX_TRADES,
  MUTATION_KINDS,
  TEMPLATES,
  countByCode,
  generateBadRecords,
  mapFrame,
  simulatedBaseFrames,
} from '../../helpers/frame-mutations';

const BASE_SYMBOLS = ['SOLUSDT', 'BNBUSDT', 'ÄÖÜUSDT'];

describe('frame-mutations generator (fault-test poison records)', function () {
  this.timeout(60000);
  let base: Buffer[];
  before(() => {
    base = simulatedBaseFrames(11, BASE_SYMBOLS, 3000);
  });

  it('knows schema 1:0 as the decoder does (root blocks, groups, limits)', () => {
    for (const layout of Object.values(LAYOUTS)) {
      const spec = TEMPLATES.get(layout.templateId);
      expect(spec, layout.name).to.not.equal(undefined);
      expect(spec!.name).to.equal(layout.name);
      expect(spec!.rootBlock).to.equal(layout.blockLength);
      expect(spec!.groups.map((g) => [g.name, g.headerLength, g.entryLength])).to.deep.equal(
        layout.groups.map((g) => [g.name, g.headerLength, g.blockLength]),
      );
    }
    expect(TEMPLATES.size).to.equal(Object.keys(LAYOUTS).length);
    expect(MAX_TRADES).to.equal(MAX_TRADES_PER_EVENT);
    expect(MAX_LEVELS).to.equal(MAX_LEVELS_PER_SIDE);
    for (const frame of base) expect(() => mapFrame(frame)).to.not.throw();
  });

  it('is deterministic: the same seed gives the same records, another seed others', () => {
    const a = generateBadRecords(5, 500, base);
    const b = generateBadRecords(5, 500, base);
    const c = generateBadRecords(6, 500, base);
    expect(a.map((r) => [r.kind, r.expected, r.data.toString('hex')])).to.deep.equal(
      b.map((r) => [r.kind, r.expected, r.data.toString('hex')]),
    );
    expect(a.map((r) => r.data.toString('hex'))).to.not.deep.equal(c.map((r) => r.data.toString('hex')));
  });

  it('labels every record with the code the decoder gives it, for every kind', () => {
    const records = generateBadRecords(20261125, 20000, base);
    const kinds = new Set(records.map((r) => r.kind));
    expect([...kinds].sort()).to.deep.equal([...MUTATION_KINDS].sort());
    const mismatches: string[] = [];
    for (const [i, r] of records.entries()) {
      let code: string;
      try {
        decodeFrames(r.data);
        code = 'DECODED';
      } catch (err) {
        code = err instanceof SbeDecodeError ? err.code : `THREW ${String(err)}`;
      }
      if (code !== r.expected && mismatches.length < 10)
        mismatches.push(`#${i} ${r.kind}: expected ${r.expected}, got ${code} (${r.data.toString('hex')})`);
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
      'INVALID_SYMBOL',
    ]) {
      expect(counts[code] ?? 0, code).to.be.greaterThan(100);
    }
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
