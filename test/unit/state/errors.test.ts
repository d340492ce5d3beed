import { expect } from 'chai';
import { BookArgumentError, BookScriptError } from '../../../src/state/book';
import { classifyFailure, ContainedWriteError, toContained } from '../../../src/state/errors';
import { TradeBatchError } from '../../../src/state/trades';

/** An error as ioredis reports an error reply. */
function reply(message: string): Error {
  const err = new Error(message);
  err.name = 'ReplyError';
  return err;
}

describe('state/errors: one classification of a failed write', () => {
  it('outages and failovers are retried; the connection lacking rights is fatal; the rest is contained', () => {
    for (const m of [
      'Connection is closed.',
      'READONLY You cannot write',
      'LOADING',
      'OOM command not allowed',
    ]) {
      expect(classifyFailure(reply(m)), m).to.equal('retry');
    }
    for (const m of [
      'NOAUTH Authentication required.',
      'WRONGPASS invalid',
      'NOPERM this user has no permissions',
    ]) {
      expect(classifyFailure(reply(m)), m).to.equal('fatal');
    }
    for (const m of [
      "CROSSSLOT Keys in request don't hash to the same slot",
      'WRONGTYPE Operation against a key holding the wrong kind of value',
      'ERR user_script:12: attempt to compare nil with number',
      'BOOKARGS U > u',
    ]) {
      expect(classifyFailure(reply(m)), m).to.equal('contained');
    }
    expect(classifyFailure(new TypeError('x is undefined'))).to.equal('contained');
  });

  it('each contained failure carries its dead-letter code', () => {
    expect(toContained(reply('BOOKARGS U > u'), 'depth of S').code).to.equal('SCRIPT_ARGS');
    expect(toContained(reply('ERR_TRADE_ARGS bad id'), 'trades of S').code).to.equal('SCRIPT_ARGS');
    expect(toContained(reply('CROSSSLOT Keys'), 'x').code).to.equal('SCRIPT_ERROR');
    expect(toContained(new BookArgumentError('S', 'negative'), 'x').code).to.equal('SCRIPT_ARGS');
    expect(toContained(new BookScriptError('applyDepthBatch', 'S', 'REPLY', 'bad'), 'x').code).to.equal(
      'SCRIPT_REPLY',
    );
    expect(toContained(new BookScriptError('applyDepthBatch', 'S', 'SCRIPT', 'bad'), 'x').code).to.equal(
      'SCRIPT_ERROR',
    );
    expect(toContained(new TradeBatchError('unexpected reply', 'S', 'SCRIPT_REPLY'), 'x').code).to.equal(
      'SCRIPT_REPLY',
    );
    const err = toContained(new RangeError('boom'), 'depth of BTCUSDT');
    expect(err).to.be.instanceOf(ContainedWriteError);
    expect(err.message).to.equal('depth of BTCUSDT: boom');
  });
});
