import { expect } from 'chai';
import { contiguousTrades, replayChunks } from '../../../src/reanchor/build';
import { diffIds } from '../../../src/state/book';
import type { FlatTrade } from '../../../src/state/trades';

function trades(...ids: number[]): FlatTrade[] {
  return ids.map((id) => ({
    id: BigInt(id),
    timeUs: BigInt(id) * 1000n,
    price: '1',
    qty: '1',
    isBuyerMaker: false,
  }));
}
const ids = (list: readonly FlatTrade[]) => list.map((t) => Number(t.id));

describe('contiguousTrades: REST trades that may extend a trade state', () => {
  it('without a known last id, the REST answer starts the state', () => {
    expect(ids(contiguousTrades(trades(5, 6, 7), undefined).apply)).to.deep.equal([5, 6, 7]);
  });

  it('keeps the trades at or below the last id (the script skips them) and the run that continues it', () => {
    const out = contiguousTrades(trades(3, 4, 5, 6, 7), 5n);
    expect(ids(out.apply)).to.deep.equal([3, 4, 5, 6, 7]);
    expect(out.withheld).to.equal(0);
  });

  it('withholds everything from a hole after the last id on', () => {
    expect(contiguousTrades(trades(8, 9, 10), 5n)).to.deep.equal({ apply: [], withheld: 3 });
  });

  it('stops at a hole inside the answer', () => {
    const out = contiguousTrades(trades(6, 7, 9, 10), 5n);
    expect(ids(out.apply)).to.deep.equal([6, 7]);
    expect(out.withheld).to.equal(2);
  });

  it('tolerates duplicate ids', () => {
    expect(ids(contiguousTrades(trades(6, 6, 7), 5n).apply)).to.deep.equal([6, 6, 7]);
  });

  it('an empty answer applies nothing', () => {
    expect(contiguousTrades([], 5n)).to.deep.equal({ apply: [], withheld: 0 });
  });
});

describe('replayChunks: the buffered diffs the build applies to the temporary book', () => {
  const entry = (U: number, u: number, levels = 1) =>
    [U, u, 1000, levels, ...Array.from({ length: levels }, () => '1.00000000 2.00000000')].join(' ');

  it('diffIds reads U, u and the number of levels of a buffer entry', () => {
    expect(diffIds(entry(5, 7, 3))).to.deep.equal({ U: 5n, u: 7n, levels: 3 });
    expect(diffIds('5 7 1000 0')).to.deep.equal({ U: 5n, u: 7n, levels: 0 });
    expect(diffIds('garbage')).to.equal(undefined);
  });

  it('takes the diffs after the snapshot that chain from it, in bounded chunks', () => {
    const entries = [entry(1, 5), entry(6, 9), entry(8, 12, 4), entry(13, 13), entry(14, 20, 2)];
    const chunks = replayChunks(entries, 10n, { maxDiffs: 2, maxLevels: 100 });
    // u <= 10 is covered by the snapshot; 8..12 bridges it (U <= 11 <= u).
    expect(chunks).to.deep.equal([[entry(8, 12, 4), entry(13, 13)], [entry(14, 20, 2)]]);
    // 4 + 1 levels fit 5; the next 2 do not.
    expect(replayChunks(entries, 10n, { maxDiffs: 10, maxLevels: 5 }).map((c) => c.length)).to.deep.equal([
      2, 1,
    ]);
  });

  it('stops at the first diff that does not chain (the swap judges the rest) and at an unreadable entry', () => {
    expect(replayChunks([entry(12, 13), entry(14, 15)], 10n, { maxDiffs: 10, maxLevels: 100 })).to.deep.equal(
      [],
    );
    expect(replayChunks([entry(11, 11), entry(13, 14)], 10n, { maxDiffs: 10, maxLevels: 100 })).to.deep.equal(
      [[entry(11, 11)]],
    );
    expect(
      replayChunks([entry(11, 11), 'x', entry(12, 12)], 10n, { maxDiffs: 10, maxLevels: 100 }),
    ).to.deep.equal([[entry(11, 11)]]);
  });
});
