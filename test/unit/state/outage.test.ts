import { EventEmitter } from 'node:events';
import { expect } from 'chai';
import sinon from 'sinon';
import { RedisOutage } from '../../../src/state/outage';
import type { RedisClient } from '../../../src/state/redis';

describe('RedisOutage', () => {
  function tracker() {
    let now = 1_000;
    const logger = { warn: sinon.spy() };
    const ended: number[] = [];
    const outage = new RedisOutage({
      logger,
      rideThrough: '180 s',
      now: () => now,
      onEnd: (ms) => ended.push(ms),
    });
    return { outage, logger, ended, advance: (ms: number) => (now += ms) };
  }

  it('one line starts an outage and one ends it, however many failures and reconnects come between', () => {
    const t = tracker();
    const client = new EventEmitter();
    t.outage.watch(client as unknown as RedisClient);
    client.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    t.advance(500);
    for (let i = 0; i < 20; i++) {
      client.emit('reconnecting', 100);
      client.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
      t.outage.failed(new Error('READONLY You cannot write against a read only replica.'));
    }
    expect(t.outage.waitingSinceMs).to.equal(1_000);
    t.advance(40_000);
    t.outage.recovered();
    t.outage.recovered();
    expect(t.logger.warn.args).to.deep.equal([
      [
        'redis unavailable: waiting for it',
        { error: 'connect ECONNREFUSED 127.0.0.1:6379', rideThrough: '180 s' },
      ],
      [
        'redis available again',
        { outageMs: 40_500, lastError: 'READONLY You cannot write against a read only replica.' },
      ],
    ]);
    expect(t.ended).to.deep.equal([40_500]);
    expect(t.outage.outages).to.equal(1);
    expect(t.outage.totalMs).to.equal(40_500);
    expect(t.outage.waitingSinceMs).to.equal(undefined);
  });

  it('a connection that comes back is not the end: only a success reported by the process is', () => {
    const t = tracker();
    const client = new EventEmitter();
    t.outage.watch(client as unknown as RedisClient);
    client.emit('error', new Error('Connection is closed.'));
    client.emit('ready');
    client.emit('connect');
    expect(t.outage.waitingSinceMs).to.equal(1_000);
    expect(t.logger.warn.callCount).to.equal(1);
  });

  it('counts each outage; a success without an outage says nothing', () => {
    const t = tracker();
    t.outage.recovered();
    t.outage.failed(new Error('Command timed out'));
    t.advance(2_000);
    t.outage.recovered();
    t.outage.failed('LOADING Redis is loading the dataset in memory');
    t.advance(3_000);
    t.outage.recovered();
    expect(t.outage.outages).to.equal(2);
    expect(t.ended).to.deep.equal([2_000, 3_000]);
    expect(t.logger.warn.callCount).to.equal(4);
  });
});
