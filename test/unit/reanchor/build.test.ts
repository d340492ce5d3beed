import { expect } from 'chai';
import { contiguousTrades } from '../../../src/reanchor/build';
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
