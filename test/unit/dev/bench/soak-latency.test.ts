import { expect } from 'chai';
import { LatencyTracker, trackedId } from '../../../../src/dev/bench/soak-latency';
import type { SbeMessage } from '../../../../src/sbe/messages';

describe('soak latency tracker', function () {
  it('tracks every kind of event by the id its state script writes last', function () {
    const base = { eventTime: 1n, priceExponent: -8, qtyExponent: -8, symbol: 'BTCUSDT' };
    const trade: SbeMessage = {
      ...base,
      message: 'TradesStreamEvent',
      transactTime: 1n,
      trades: [
        { id: 7n, priceMantissa: 1n, qtyMantissa: 1n, isBuyerMaker: true, isBestMatch: true },
        { id: 9n, priceMantissa: 1n, qtyMantissa: 1n, isBuyerMaker: true, isBestMatch: true },
      ],
    };
    expect(trackedId(trade)).to.deep.equal({ kind: 'trade', id: 9 });
    const bba: SbeMessage = {
      ...base,
      message: 'BestBidAskStreamEvent',
      bookUpdateId: 11n,
      bidPriceMantissa: 1n,
      bidQtyMantissa: 1n,
      askPriceMantissa: 2n,
      askQtyMantissa: 1n,
    };
    expect(trackedId(bba)).to.deep.equal({ kind: 'bestbidask', id: 11 });
    const diff: SbeMessage = {
      ...base,
      message: 'DepthDiffStreamEvent',
      firstBookUpdateId: 12n,
      lastBookUpdateId: 15n,
      bids: [],
      asks: [],
    };
    expect(trackedId(diff)).to.deep.equal({ kind: 'depth_diff', id: 15 });
    const snap: SbeMessage = {
      ...base,
      message: 'DepthSnapshotStreamEvent',
      bookUpdateId: 15n,
      bids: [],
      asks: [],
    };
    expect(trackedId(snap)).to.deep.equal({ kind: 'depth20', id: 15 });
  });

  it('latency = first time an id >= the event id is visible - the PutRecords return', function () {
    const t = new LatencyTracker();
    const c1 = t.sent(
      [
        { kind: 'trade', id: 1 },
        { kind: 'trade', id: 2 },
        { kind: 'bestbidask', id: 10 },
      ],
      100,
    );
    t.returned(c1, 110);
    const c2 = t.sent([{ kind: 'trade', id: 3 }], 120);
    t.returned(c2, 125);
    expect(t.pending).to.equal(4);
    t.visible('trade', 2, 150); // ids 1 and 2: 40 ms after their return
    t.visible('bestbidask', 10, 160);
    expect(t.pending).to.equal(1);
    t.visible('trade', 2, 170); // not newer: nothing
    t.visible('trade', 5, 200); // id 3: 75 ms
    expect(t.pending).to.equal(0);
    const s = t.summary();
    expect(s.trade.fromReturn.count).to.equal(3);
    expect(s.trade.fromReturn.p50).to.equal(40);
    expect(s.trade.fromReturn.max).to.equal(75);
    expect(s.trade.fromSend.max).to.equal(80);
    expect(s.bestbidask.fromReturn.p50).to.equal(50);
    expect(s.all.published).to.equal(4);
    expect(s.all.visible).to.equal(4);
    expect(t.lastVisibleMs).to.equal(200);
  });

  it('an event seen before its call returned counts as visible at the return (0), and warm-up events only count as applied', function () {
    const t = new LatencyTracker(50);
    const warm = t.sent([{ kind: 'depth_diff', id: 1 }], 40);
    t.returned(warm, 45);
    t.visible('depth_diff', 1, 60);
    const c = t.sent([{ kind: 'depth_diff', id: 2 }], 100);
    t.visible('depth_diff', 2, 105);
    expect(t.visibleBeforeReturn).to.equal(1);
    t.returned(c, 110);
    const s = t.summary();
    expect(s.depth_diff.visible).to.equal(2);
    expect(s.depth_diff.warmup).to.equal(1);
    expect(s.depth_diff.fromReturn.count).to.equal(1);
    expect(s.depth_diff.fromReturn.max).to.equal(0);
    expect(s.depth_diff.fromSend.max).to.equal(5);
  });

  it('an id already visible when sent (a depth20 repeating the last bookUpdateId) is applied at once', function () {
    const t = new LatencyTracker();
    const a = t.sent([{ kind: 'depth20', id: 5 }], 0);
    t.returned(a, 10);
    t.visible('depth20', 5, 20);
    const b = t.sent([{ kind: 'depth20', id: 5 }], 30);
    t.returned(b, 40);
    expect(t.pending).to.equal(0);
    expect(t.alreadyVisible).to.equal(1);
    expect(t.summary().depth20.visible).to.equal(2);
  });

  it('keeps pending events sorted when an id arrives out of order (a retried entry)', function () {
    const t = new LatencyTracker();
    const a = t.sent([{ kind: 'trade', id: 5 }], 0);
    const b = t.sent([{ kind: 'trade', id: 3 }], 1);
    t.returned(a, 2);
    t.returned(b, 3);
    expect(t.outOfOrder).to.equal(1);
    t.visible('trade', 3, 10);
    expect(t.pending).to.equal(1);
    t.visible('trade', 5, 20);
    expect(t.pending).to.equal(0);
  });
});
