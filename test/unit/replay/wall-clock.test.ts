import { expect } from 'chai';
import { simulate } from '../../../src/replay/simulator';
import { chooseActionsPerSecond, eventTimeUs, measureNaturalRates } from '../../../src/replay/wall-clock';
import type { SbeMessage } from '../../../src/sbe/messages';

describe('replay/wall-clock', () => {
  it('chooses book actions so that the natural event rate equals the publishing rate', () => {
    // A linear model like the simulator's: depth fixed by the cadences, trades and bestBidAsk per action.
    const measure = (aps: number) => {
      const trade = aps * 0.15;
      const bestbidask = aps * 0.28;
      return { trade, bestbidask, depth: 70, total: trade + bestbidask + 70 };
    };
    const aps = chooseActionsPerSecond(300, measure);
    expect(measure(aps).total).to.be.closeTo(300, 1);
    expect(chooseActionsPerSecond(10, measure)).to.equal(10); // below the depth cadence: clamped
    expect(chooseActionsPerSecond(1e9, measure)).to.equal(200_000);
  });

  it('below the probe, where the depth rate falls with the actions, searches on measurements', () => {
    // Like the simulator: a diff only for the 25 ms intervals with a change, depth20 every 50 ms regardless.
    const measured: number[] = [];
    const measure = (aps: number) => {
      measured.push(aps);
      const depth = 20 + 40 * (1 - Math.exp(-aps * 0.025));
      const trade = aps * 0.15;
      const bestbidask = aps * 0.28;
      return { trade, bestbidask, depth, total: trade + bestbidask + depth };
    };
    for (const rate of [40, 60, 100, 200]) {
      measured.length = 0;
      const aps = chooseActionsPerSecond(rate, measure);
      expect(measure(aps).total, `rate ${rate}`).to.be.closeTo(rate, rate * 0.02);
      expect(Math.max(...measured), 'never measured above the probe').to.equal(500);
      expect(measured.length, 'measurements').to.be.at.most(10);
    }
    // The quietest market is still busier than the rate: the bottom of the range (event time will lag).
    expect(chooseActionsPerSecond(30, measure)).to.equal(10);
  });

  it('measures the real simulator: the chosen activity gives the rate within a few percent', () => {
    const activity = { seed: 3, symbols: ['BTCUSDT', 'ETHUSDT'] };
    const aps = chooseActionsPerSecond(2000, (a) =>
      measureNaturalRates({ ...activity, actionsPerSecond: a }),
    );
    const natural = measureNaturalRates({ ...activity, actionsPerSecond: aps });
    expect(natural.total).to.be.closeTo(2000, 60);
    expect(natural.total).to.be.closeTo(natural.trade + natural.bestbidask + natural.depth, 1e-9);
    // A low rate for one symbol, where the depth cadence is most of it.
    const one = { seed: 3, symbols: ['BTCUSDT'] };
    const low = chooseActionsPerSecond(80, (a) => measureNaturalRates({ ...one, actionsPerSecond: a }));
    expect(measureNaturalRates({ ...one, actionsPerSecond: low }).total).to.be.closeTo(80, 1.6);
  });

  it('eventTimeUs: the event time, for trades the later of the event and transact times', () => {
    const events = [...simulate({ seed: 1, symbols: ['BTCUSDT'], startTimeUs: 5_000_000n }, 200)];
    const trade = events.find((e) => e.message.message === 'TradesStreamEvent')!.message as SbeMessage & {
      message: 'TradesStreamEvent';
    };
    const depth = events.find((e) => e.stream === 'depth')!.message;
    expect(eventTimeUs(depth)).to.equal(depth.eventTime);
    expect(eventTimeUs({ ...trade, eventTime: 10n, transactTime: 20n })).to.equal(20n);
    expect(eventTimeUs({ ...trade, eventTime: 30n, transactTime: 20n })).to.equal(30n);
  });
});
