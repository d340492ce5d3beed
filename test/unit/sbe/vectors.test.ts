// The published vectors (encoded by the official Real Logic generator): decode to exactly `expected`, the .bin files
// match their hex, re-encoding reproduces the bytes, and every truncation of every vector is a TRUNCATED error.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { decodeFrame, decodeFrames, encodeFrames, encodeMessage, frameToJson } from '../../../src/sbe';
import { decodeError, loadVectors, vectorsDir } from './fixtures';

describe('sbe vectors', () => {
  const vectors = loadVectors();

  it('has the eight published vectors', () => {
    expect(vectors.map((v) => v.name)).to.have.length(8);
  });

  for (const v of vectors) {
    describe(v.name, () => {
      const bytes = Buffer.from(v.hex, 'hex');

      it('its .bin file equals its hex', () => {
        const bin = fs.readFileSync(path.join(vectorsDir, `${v.name}.bin`));
        expect(bin.equals(bytes)).to.equal(true);
      });

      it('decodes to exactly `expected` (same keys, same order)', () => {
        const json = frameToJson(decodeFrame(bytes));
        expect(json).to.deep.equal(v.expected);
        expect(JSON.stringify(json)).to.equal(JSON.stringify(v.expected));
        expect(decodeFrame(bytes).frameLength).to.equal(bytes.length);
      });

      it('re-encodes to the same bytes', () => {
        const frame = decodeFrame(bytes);
        expect(encodeMessage(frame.message).toString('hex')).to.equal(v.hex);
      });

      it('decodes at a non-zero offset, with error offsets relative to the buffer', () => {
        const prefixed = Buffer.concat([Buffer.from([0xde, 0xad, 0xbe]), bytes]);
        expect(frameToJson(decodeFrame(prefixed, 3))).to.deep.equal(v.expected);
        const err = decodeError(() => decodeFrame(prefixed.subarray(0, prefixed.length - 1), 3));
        expect(err.code).to.equal('TRUNCATED');
        expect(err.offset).to.be.at.least(3);
      });

      it('every truncation (0..length-1 bytes) throws TRUNCATED and nothing else', () => {
        for (let len = 0; len < bytes.length; len++) {
          const cut = Buffer.from(bytes.subarray(0, len));
          const err = decodeError(() => decodeFrame(cut));
          expect(err.code, `length ${len}`).to.equal('TRUNCATED');
          expect(err.offset, `length ${len}`).to.be.within(0, len);
          expect(err.message, `length ${len}`).to.contain(`offset ${err.offset}`).and.contain(err.field);
          if (len > 0)
            expect(decodeError(() => decodeFrames(cut)).code, `length ${len}`).to.equal('TRUNCATED');
        }
      });

      it('a partial second frame in decodeFrames is TRUNCATED at an offset past the first', () => {
        for (const cut of [1, 8, 20, bytes.length - 1]) {
          const err = decodeError(() => decodeFrames(Buffer.concat([bytes, bytes.subarray(0, cut)])));
          expect(err.code).to.equal('TRUNCATED');
          expect(err.offset).to.be.at.least(bytes.length);
        }
      });
    });
  }

  it('decodeFrames walks all vectors concatenated, and encodeFrames rebuilds the same record', () => {
    const all = Buffer.concat(vectors.map((v) => Buffer.from(v.hex, 'hex')));
    const frames = decodeFrames(all);
    expect(frames.map(frameToJson)).to.deep.equal(vectors.map((v) => v.expected));
    expect(encodeFrames(frames.map((f) => f.message)).equals(all)).to.equal(true);
  });

  it('names the field and offset in a truncation message', () => {
    const err = decodeError(() => decodeFrame(Buffer.from('1200102701', 'hex')));
    expect(err.message).to.equal('truncated frame: need 8 bytes for header at offset 0, have 5');
    expect(err.field).to.equal('header');
  });
});
