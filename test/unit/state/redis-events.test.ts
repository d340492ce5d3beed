import { EventEmitter } from 'node:events';
import { expect } from 'chai';
import sinon from 'sinon';
import { logConnectionEvents, type RedisClient } from '../../../src/state/redis';

describe('logConnectionEvents', () => {
  it('logs errors and every reconnect attempt at warn', () => {
    const client = new EventEmitter();
    const logger = { warn: sinon.spy() };
    logConnectionEvents(client as unknown as RedisClient, logger);
    client.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    client.emit('reconnecting', 100);
    client.emit('reconnecting', 200);
    expect(logger.warn.args).to.deep.equal([
      ['redis connection error', { error: 'connect ECONNREFUSED 127.0.0.1:6379' }],
      ['redis connection lost; reconnecting', { delayMs: 100 }],
      ['redis connection lost; reconnecting', { delayMs: 200 }],
    ]);
  });
});
