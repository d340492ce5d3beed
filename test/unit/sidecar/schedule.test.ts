import { expect } from 'chai';
import { currentTickAt, delayUntil, missedTicks, nextTickAt } from '../../../src/sidecar/schedule';

describe('sidecar tick schedule', () => {
  const T0 = Date.UTC(2026, 10, 25, 10, 0, 0); // 10:00:00.000 UTC

  it('aligns ticks to multiples of the interval since the epoch (2 s -> :00, :02, :04)', () => {
    expect(nextTickAt(T0 - 1, 2000)).to.equal(T0);
    expect(nextTickAt(T0, 2000)).to.equal(T0 + 2000);
    expect(nextTickAt(T0 + 1, 2000)).to.equal(T0 + 2000);
    expect(nextTickAt(T0 + 1999, 2000)).to.equal(T0 + 2000);
    expect(nextTickAt(T0 + 2000, 2000)).to.equal(T0 + 4000);
    expect(new Date(nextTickAt(T0 + 3333, 2000)).toISOString()).to.equal('2026-11-25T10:00:04.000Z');
    expect(currentTickAt(T0 + 3333, 2000)).to.equal(T0 + 2000);
    expect(nextTickAt(T0 + 150, 200) % 200).to.equal(0);
  });

  it('does not drift over many ticks when each timer fires late by a varying amount', () => {
    // Simulate a timer that fires 0..37 ms late and a tick that takes 0..450 ms: every tick is still exactly
    // on the grid, none is repeated and none is skipped.
    const interval = 2000;
    let now = T0 + 123;
    let previous: number | undefined;
    for (let i = 0; i < 10_000; i++) {
      const tick = nextTickAt(now, interval);
      expect(tick % interval).to.equal(0);
      if (previous !== undefined) {
        expect(tick - previous).to.equal(interval);
        expect(missedTicks(previous, tick, interval)).to.equal(0);
      }
      const late = (i * 7919) % 38;
      const work = (i * 104729) % 451;
      now = tick + late + work;
      previous = tick;
    }
    expect(previous).to.equal(T0 + 10_000 * interval);
  });

  it('skips (and counts) the ticks an overrunning tick covered, without piling them up', () => {
    const interval = 2000;
    const tick = T0;
    const finishedAt = tick + 5 * interval + 10; // the tick took five intervals
    const next = nextTickAt(finishedAt, interval);
    expect(next).to.equal(T0 + 6 * interval);
    expect(missedTicks(tick, next, interval)).to.equal(5);
  });

  it('delayUntil never returns a negative delay', () => {
    expect(delayUntil(T0, T0 - 250)).to.equal(250);
    expect(delayUntil(T0, T0 + 5)).to.equal(0);
  });

  it('rejects a non-positive or fractional interval', () => {
    expect(() => nextTickAt(T0, 0)).to.throw(RangeError, 'positive integer');
    expect(() => nextTickAt(T0, 1.5)).to.throw(RangeError, 'got 1.5');
  });
});
