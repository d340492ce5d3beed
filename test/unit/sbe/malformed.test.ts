// Malformed input: each kind of damage gives its own typed code, and random bytes never escape as anything other
// than a DecodedFrame or an SbeDecodeError.
import { expect } from 'chai';
import {
  LAYOUTS,
  MAX_LEVELS_PER_SIDE,
  MAX_TRADES_PER_EVENT,
  SbeDecodeError,
  TemplateId,
  decodeFrame,
  decodeFrames,
  encodeMessage,
  frameToJson,
} from '../../../src/sbe';
import type { DecodedFrame, SbeDecodeErrorCode, SbeMessage } from '../../../src/sbe';
import { Rng, decodeError, loadVectors, randomMessage } from './fixtures';

function expectCode(buf: Buffer, code: SbeDecodeErrorCode, field?: string): SbeDecodeError {
  const err = decodeError(() => decodeFrame(buf));
  expect(err.code, err.message).to.equal(code);
  if (field !== undefined) expect(err.field).to.equal(field);
  expect(err.message).to.contain(err.field);
  return err;
}

const vectors = new Map(loadVectors().map((v) => [v.name, Buffer.from(v.hex, 'hex')]));
function vector(name: string): Buffer {
  const v = vectors.get(name);
  if (v === undefined) throw new Error(`no vector ${name}`);
  return Buffer.from(v); // a private copy to damage
}
const trades2 = (): Buffer => vector('A1_trades_2_btcusdt');
const bba = (): Buffer => vector('A2_best_bid_ask_ethusdt');
const snapshot = (): Buffer => vector('A3_depth_snapshot_2x2_btcusdt');
const diff = (): Buffer => vector('A4_depth_diff_1x1_btcusdt');

/**
 * Re-lays a schema 1:0 frame as a later schema version might: `rootExtra` bytes appended to the root block and
 * `entryExtra` bytes to each group entry, with the header and group blockLengths raised to match.
 */
function widen(frame: Buffer, rootExtra: number, entryExtra: number): Buffer {
  const templateId = frame.readUInt16LE(2);
  const layout = Object.values(LAYOUTS).find((l) => l.templateId === templateId);
  if (layout === undefined) throw new Error(`template ${templateId}`);
  const parts: Buffer[] = [];
  const header = Buffer.from(frame.subarray(0, 8));
  header.writeUInt16LE(layout.blockLength + rootExtra, 0);
  parts.push(header, frame.subarray(8, 8 + layout.blockLength), Buffer.alloc(rootExtra, 0xab));
  let pos = 8 + layout.blockLength;
  for (const g of layout.groups) {
    const gh = Buffer.from(frame.subarray(pos, pos + g.headerLength));
    const count = g.headerLength === 6 ? gh.readUInt32LE(2) : gh.readUInt16LE(2);
    gh.writeUInt16LE(g.blockLength + entryExtra, 0);
    parts.push(gh);
    pos += g.headerLength;
    for (let i = 0; i < count; i++) {
      parts.push(frame.subarray(pos, pos + g.blockLength), Buffer.alloc(entryExtra, 0xcd));
      pos += g.blockLength;
    }
  }
  parts.push(frame.subarray(pos));
  return Buffer.concat(parts);
}

/** A frame's JSON without the parts a wider layout changes (frameLength, header.blockLength). */
function body(json: Record<string, unknown>): Record<string, unknown> {
  const copy = { ...json };
  delete copy.frameLength;
  delete copy.header;
  return copy;
}

function withSymbolBytes(msg: SbeMessage, symbolBytes: readonly number[]): Buffer {
  const frame = encodeMessage({ ...msg, symbol: '' });
  return Buffer.concat([
    frame.subarray(0, frame.length - 1),
    Buffer.from([symbolBytes.length, ...symbolBytes]),
  ]);
}

describe('sbe malformed frames', () => {
  it('empty buffer: decodeFrames -> EMPTY, decodeFrame -> TRUNCATED', () => {
    expect(decodeError(() => decodeFrames(Buffer.alloc(0))).code).to.equal('EMPTY');
    expectCode(Buffer.alloc(0), 'TRUNCATED', 'header');
  });

  it('unknown templateId -> UNKNOWN_TEMPLATE at offset 2', () => {
    for (const t of [0, 9999, 10004, 0xffff]) {
      const b = trades2();
      b.writeUInt16LE(t, 2);
      const err = expectCode(b, 'UNKNOWN_TEMPLATE', 'header.templateId');
      expect(err.offset).to.equal(2);
      expect(err.message).to.contain(String(t));
    }
  });

  it('other schemaId or version -> SCHEMA_MISMATCH', () => {
    for (const [at, value, field] of [
      [4, 0, 'header.schemaId'],
      [4, 2, 'header.schemaId'],
      [4, 0xffff, 'header.schemaId'],
      [6, 1, 'header.version'],
      [6, 0xffff, 'header.version'],
    ] as const) {
      const b = bba();
      b.writeUInt16LE(value, at);
      expect(expectCode(b, 'SCHEMA_MISMATCH', field).offset).to.equal(at);
    }
  });

  it('root blockLength smaller than the schema -> BLOCK_LENGTH_TOO_SMALL', () => {
    for (const [b, schema] of [
      [trades2(), 18],
      [bba(), 50],
      [snapshot(), 18],
      [diff(), 26],
    ] as const) {
      for (const small of [0, 1, schema - 1]) {
        b.writeUInt16LE(small, 0);
        const err = expectCode(b, 'BLOCK_LENGTH_TOO_SMALL', 'header.blockLength');
        expect(err.message).to.contain(`at least ${schema}`);
      }
    }
  });

  it('group blockLength smaller than the schema -> BLOCK_LENGTH_TOO_SMALL', () => {
    const t = trades2();
    t.writeUInt16LE(24, 26);
    expectCode(t, 'BLOCK_LENGTH_TOO_SMALL', 'trades.groupHeader.blockLength');
    const s = snapshot();
    s.writeUInt16LE(15, 26);
    expectCode(s, 'BLOCK_LENGTH_TOO_SMALL', 'bids.groupHeader.blockLength');
    const d = diff();
    d.writeUInt16LE(0, 8 + 26 + 4 + 16); // asks header after one bid
    expectCode(d, 'BLOCK_LENGTH_TOO_SMALL', 'asks.groupHeader.blockLength');
  });

  it('huge numInGroup (u32 0xFFFFFFFF, u16 0xFFFF) -> GROUP_COUNT_TOO_LARGE before allocating', () => {
    for (const n of [0xffffffff, 0x7fffffff, MAX_TRADES_PER_EVENT + 1]) {
      const t = trades2();
      t.writeUInt32LE(n, 28);
      const err = expectCode(t, 'GROUP_COUNT_TOO_LARGE', 'trades.groupHeader.numInGroup');
      expect(err.offset).to.equal(28);
      expect(err.message).to.contain(String(n));
    }
    for (const [frame, at, field] of [
      [snapshot(), 28, 'bids.groupHeader.numInGroup'],
      [snapshot(), 8 + 18 + 4 + 2 * 16 + 2, 'asks.groupHeader.numInGroup'],
      [diff(), 8 + 26 + 2, 'bids.groupHeader.numInGroup'],
    ] as const) {
      for (const n of [0xffff, MAX_LEVELS_PER_SIDE + 1]) {
        frame.writeUInt16LE(n, at);
        expectCode(frame, 'GROUP_COUNT_TOO_LARGE', field);
      }
    }
  });

  it('a count within the cap but beyond the bytes -> TRUNCATED naming the declared count', () => {
    const t = trades2();
    t.writeUInt32LE(MAX_TRADES_PER_EVENT, 28);
    const err = expectCode(t, 'TRUNCATED', 'trades');
    expect(err.message).to.contain(`declares ${MAX_TRADES_PER_EVENT} entries`);
    const s = snapshot();
    s.writeUInt16LE(10, 28);
    expect(expectCode(s, 'TRUNCATED', 'bids').message).to.contain(
      'declares 10 entries x 16 bytes = 160 bytes',
    );
  });

  it('larger blockLengths (a later schema version) are skipped and decode to the same message', () => {
    for (const [name, v] of vectors) {
      const expected = frameToJson(decodeFrame(v));
      for (const [rootExtra, entryExtra] of [
        [1, 0],
        [0, 1],
        [7, 9],
        [300, 40],
      ] as const) {
        const wide = widen(v, rootExtra, entryExtra);
        const frame = decodeFrame(wide);
        expect(frame.frameLength, name).to.equal(wide.length);
        expect(body(frameToJson(frame)), name).to.deep.equal(body(expected));
        expect(frame.header.blockLength).to.equal(decodeFrame(v).header.blockLength + rootExtra);
        // ...and the frame after it is still found.
        expect(decodeFrames(Buffer.concat([wide, v]))).to.have.length(2);
      }
    }
  });

  it('invalid UTF-8 in the symbol -> INVALID_SYMBOL', () => {
    const msg = decodeFrame(bba()).message;
    for (const bad of [
      [0xff],
      [0x42, 0xc0, 0x80],
      [0xed, 0xa0, 0x80],
      [0x41, 0xc3],
      [0xf8, 0x88, 0x80, 0x80, 0x80],
    ]) {
      const err = expectCode(withSymbolBytes(msg, bad), 'INVALID_SYMBOL', 'symbol');
      expect(err.offset).to.equal(8 + 50 + 1);
    }
  });

  it('non-ASCII UTF-8 symbols (and a leading BOM) decode exactly', () => {
    const msg = decodeFrame(trades2()).message;
    for (const s of ['币安人生USDT', 'ÄUSDT', '🚀', '\uFEFFBTC', '']) {
      const f = decodeFrame(withSymbolBytes(msg, [...Buffer.from(s, 'utf8')]));
      expect(f.message.symbol).to.equal(s);
    }
  });

  it('isBuyerMaker other than 0/1 -> INVALID_ENUM naming the entry', () => {
    const t = trades2();
    t[8 + 18 + 6 + 25 + 24] = 2;
    const err = expectCode(t, 'INVALID_ENUM', 'trades[1].isBuyerMaker');
    expect(err.offset).to.equal(8 + 18 + 6 + 25 + 24);
  });

  it('decodeFrames: trailing garbage after a good frame is reported at its offset', () => {
    const good = trades2();
    const err = decodeError(() => decodeFrames(Buffer.concat([good, Buffer.from([0x12, 0x00, 0x10])])));
    expect(err.code).to.equal('TRUNCATED');
    expect(err.offset).to.equal(good.length);
    const err2 = decodeError(() => decodeFrames(Buffer.concat([good, Buffer.alloc(8)])));
    expect(err2.code).to.equal('SCHEMA_MISMATCH');
    expect(err2.offset).to.equal(good.length + 4);
  });

  it('rejects an offset outside the buffer as a programming error', () => {
    expect(() => decodeFrame(trades2(), -1)).to.throw(RangeError);
    expect(() => decodeFrame(trades2(), 1.5)).to.throw(RangeError);
  });

  describe('fuzz: only DecodedFrame or SbeDecodeError', () => {
    function outcome(fn: () => DecodedFrame | DecodedFrame[]): DecodedFrame[] | SbeDecodeError {
      try {
        const r = fn();
        return Array.isArray(r) ? r : [r];
      } catch (err) {
        if (err instanceof SbeDecodeError) return err;
        throw err;
      }
    }

    it('20,000 random buffers (half with a plausible header)', () => {
      const rng = new Rng(0xfeed);
      const templates = Object.values(TemplateId);
      const codes = new Set<string>();
      for (let i = 0; i < 20_000; i++) {
        const buf = rng.bytes(rng.int(0, 160));
        if (i % 2 === 0 && buf.length >= 8) {
          buf.writeUInt16LE(rng.pick([18, 26, 50, rng.int(0, 80)]), 0);
          buf.writeUInt16LE(rng.pick([...templates, ...templates, 9999]), 2);
          buf.writeUInt32LE(1, 4); // schema 1, version 0
          if (buf.length >= 32 && rng.bool()) buf.writeUInt32LE(rng.int(0, 3), 28);
        }
        const a = outcome(() => decodeFrame(buf));
        const b = outcome(() => decodeFrames(buf));
        if (a instanceof SbeDecodeError) codes.add(a.code);
        if (b instanceof SbeDecodeError) codes.add(b.code);
      }
      expect([...codes]).to.include.members([
        'EMPTY',
        'TRUNCATED',
        'SCHEMA_MISMATCH',
        'UNKNOWN_TEMPLATE',
        'BLOCK_LENGTH_TOO_SMALL',
        'GROUP_COUNT_TOO_LARGE',
      ]);
    });

    it('20,000 single-byte mutations of valid frames; any success re-encodes to an equal message', () => {
      const rng = new Rng(0xbeef);
      const bases = [
        ...vectors.values(),
        ...Array.from({ length: 40 }, () => encodeMessage(randomMessage(rng))),
      ];
      let decoded = 0;
      for (let i = 0; i < 20_000; i++) {
        const buf = Buffer.from(rng.pick(bases));
        buf[rng.int(0, buf.length - 1)] = rng.int(0, 255);
        const r = outcome(() => decodeFrame(buf));
        if (!(r instanceof SbeDecodeError)) {
          decoded++;
          const first = r[0]!;
          expect(first.frameLength).to.be.at.most(buf.length);
          expect(decodeFrame(encodeMessage(first.message)).message).to.deep.equal(first.message);
        }
        outcome(() => decodeFrames(buf));
      }
      expect(decoded).to.be.greaterThan(1000);
    });
  });
});
