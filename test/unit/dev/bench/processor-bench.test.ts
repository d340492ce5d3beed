import { expect } from 'chai';
import { deepenSnapshot } from '../../../../src/dev/bench/processor-bench';

describe('processor bench: books anchored as deep as production', () => {
  const level = (priceMantissa: bigint, qtyMantissa = 7n) => ({ priceMantissa, qtyMantissa });
  const snapshot = {
    lastUpdateId: 42n,
    bids: [level(1000n), level(990n), level(985n, 3n)],
    asks: [level(1010n), level(1030n, 4n)],
  };

  it('extends each side beyond its farthest level by the smallest step, with that level quantity', () => {
    const deep = deepenSnapshot(snapshot, 6);
    expect(deep.lastUpdateId).to.equal(42n);
    expect(deep.bids.map((l) => l.priceMantissa)).to.deep.equal([1000n, 990n, 985n, 980n, 975n, 970n]);
    expect(deep.bids.slice(3).every((l) => l.qtyMantissa === 3n)).to.equal(true);
    expect(deep.asks.map((l) => l.priceMantissa)).to.deep.equal([1010n, 1030n, 1050n, 1070n, 1090n, 1110n]);
    expect(deep.asks.slice(2).every((l) => l.qtyMantissa === 4n)).to.equal(true);
    expect(snapshot.bids).to.have.length(3, 'the input is not changed');
  });

  it('keeps bid prices above zero and leaves a side that is deep enough or empty as it is', () => {
    const deep = deepenSnapshot({ lastUpdateId: 1n, bids: [level(30n), level(20n)], asks: [] }, 10);
    expect(deep.bids.map((l) => l.priceMantissa)).to.deep.equal([30n, 20n, 10n]);
    expect(deep.asks).to.deep.equal([]);
    expect(deepenSnapshot(snapshot, 2).bids).to.have.length(3);
  });
});
