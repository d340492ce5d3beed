import zlib from 'node:zlib';
import { expect } from 'chai';
import { framesOf, objectItems } from '../../../src/archive/frames';
import type { ArchiveItem } from '../../../src/archive/types';
import { simulate } from '../../../src/replay/simulator';
import { encodeMessage } from '../../../src/sbe/encoder';

// Issue 16: an archive object is SBE frames back to back; damage is reported with its key and offset.

const REF = { stream: 'trade', key: 'trade/2026/12/06/14/d-1-2026-12-06-14-05-09-x' };
const FRAMES = [
  ...simulate({ seed: 4, symbols: ['BTCUSDT', 'ETHUSDT'], startTimeUs: 1_700_000_000_000_000n }, 40),
].map((e) => encodeMessage(e.message));
const CONTENT = Buffer.concat(FRAMES);
const OFFSETS = FRAMES.map((_, i) => FRAMES.slice(0, i).reduce((n, f) => n + f.length, 0));

async function collect(items: AsyncIterable<ArchiveItem>): Promise<ArchiveItem[]> {
  const out: ArchiveItem[] = [];
  for await (const item of items) out.push(item);
  return out;
}

const frameBytes = (items: readonly ArchiveItem[]): Buffer[] =>
  items.flatMap((i) => (i.kind === 'frame' ? [i.frame.bytes] : []));
const damages = (items: readonly ArchiveItem[]) =>
  items.flatMap((i) => (i.kind === 'damage' ? [i.damage] : []));

describe('archive frames', function () {
  it('an object is split into its frames, each with the key and its offset', function () {
    const items = [...framesOf(REF, CONTENT)];
    expect(items.every((i) => i.kind === 'frame')).to.equal(true);
    expect(frameBytes(items)).to.deep.equal(FRAMES);
    expect(
      items.map((i) => (i.kind === 'frame' ? [i.frame.stream, i.frame.key, i.frame.offset] : [])),
    ).to.deep.equal(OFFSETS.map((o) => ['trade', REF.key, o]));
  });

  it('a truncated object: the whole frames, then TRUNCATED at the offset of the cut frame', function () {
    const cut = OFFSETS[30]! + 5;
    const items = [...framesOf(REF, CONTENT.subarray(0, cut))];
    expect(frameBytes(items)).to.deep.equal(FRAMES.slice(0, 30));
    expect(damages(items)).to.deep.equal([
      {
        stream: 'trade',
        key: REF.key,
        offset: OFFSETS[30],
        code: 'TRUNCATED',
        error: damages(items)[0]!.error,
        bytes: 5,
      },
    ]);
    expect(damages(items)[0]!.error).to.contain(`${REF.key} at offset ${OFFSETS[30]}`);
  });

  it('bad header bytes: the frames before, then the rest of the object as one damage item with the decoder code', function () {
    const bad = Buffer.from(CONTENT);
    bad.writeUInt16LE(999, OFFSETS[12]! + 4); // schemaId
    const items = [...framesOf(REF, bad)];
    expect(frameBytes(items)).to.deep.equal(FRAMES.slice(0, 12));
    const [damage] = damages(items);
    expect(damage).to.include({
      offset: OFFSETS[12],
      code: 'SCHEMA_MISMATCH',
      bytes: bad.length - OFFSETS[12]!,
    });
    expect(items).to.have.length(13);
  });

  it('an empty object is one EMPTY damage item', function () {
    expect(damages([...framesOf(REF, Buffer.alloc(0))])).to.deep.include({
      stream: 'trade',
      key: REF.key,
      offset: 0,
      code: 'EMPTY',
      error: `${REF.key} at offset 0: empty buffer: no SBE frame at offset 0`,
      bytes: 0,
    });
  });

  it('a gzip object reads as its frames', async function () {
    const items = await collect(objectItems(REF, zlib.gzipSync(CONTENT), true));
    expect(frameBytes(items)).to.deep.equal(FRAMES);
    expect(damages(items)).to.deep.equal([]);
  });

  it('a truncated gzip: the frames it still gave, then CORRUPT_GZIP where the readable output stops', async function () {
    const gz = zlib.gzipSync(Buffer.concat([CONTENT, CONTENT, CONTENT, CONTENT]), { level: 0 });
    const cut = gz.subarray(0, Math.floor(gz.length * 0.6));
    const items = await collect(objectItems(REF, cut, true));
    const frames = frameBytes(items);
    expect(frames.length).to.be.greaterThan(40);
    expect(frames).to.deep.equal([...FRAMES, ...FRAMES, ...FRAMES].slice(0, frames.length));
    const ds = damages(items);
    expect(ds).to.have.length(1);
    const readable = frames.reduce((n, f) => n + f.length, 0);
    expect(ds[0]).to.include({ key: REF.key, offset: readable, code: 'CORRUPT_GZIP', bytes: cut.length });
    expect(items[items.length - 1]!.kind).to.equal('damage');
  });

  it('bytes that are not gzip at all: one CORRUPT_GZIP item at offset 0', async function () {
    const items = await collect(objectItems(REF, CONTENT, true));
    expect(items).to.have.length(1);
    expect(damages(items)[0]).to.include({ offset: 0, code: 'CORRUPT_GZIP', bytes: CONTENT.length });
    expect(damages(items)[0]!.error).to.match(/incorrect header check/);
  });
});
