import { expect } from 'chai';
import { AggregatorError, errorContext, errorMessage, isRetryable } from '../../../src/common/errors';
import { ConfigError } from '../../../src/config/errors';
import {
  RestBannedError,
  RestHttpError,
  RestNetworkError,
  RestTimeoutError,
  RestValidationError,
} from '../../../src/rest/client';
import { SbeDecodeError } from '../../../src/sbe/errors';
import {
  BookArgumentError,
  BookScriptError,
  bookScriptError,
  SCRIPT_ERROR_CODES,
  ScriptReplyError,
  scriptErrorCode,
  StateWriteError,
  toContained,
} from '../../../src/state/errors';
import { TradeBatchError } from '../../../src/state/trades';
import { parseAcquireReply } from '../../../src/reanchor/lock';
import { leaseOutcome } from '../../../src/sidecar/store';

/** An error as ioredis reports an error reply. */
function reply(message: string): Error {
  const err = new Error(message);
  err.name = 'ReplyError';
  return err;
}

describe('common/errors: one taxonomy', () => {
  it('AggregatorError carries a code, retryable (default false), a context and a cause', () => {
    const cause = new Error('inner');
    const err = new AggregatorError('outer', { code: 'X_Y', context: { symbol: 'BTCUSDT' }, cause });
    expect(err).to.be.instanceOf(Error);
    expect(err).to.include({ code: 'X_Y', retryable: false, message: 'outer', name: 'Error', cause });
    expect(err.context).to.deep.equal({ symbol: 'BTCUSDT' });
    expect(new AggregatorError('m', { code: 'Z' }).context).to.deep.equal({});
  });

  it('the classes keep their names and messages and gain a stable code and context', () => {
    const config = new ConfigError('redis.port', 'must be a port');
    expect(config).to.be.instanceOf(AggregatorError);
    expect(config).to.include({
      name: 'ConfigError',
      code: 'CONFIG',
      message: 'config key redis.port: must be a port',
    });
    const sbe = new SbeDecodeError('TRUNCATED', 3, 'root', 'short');
    expect(sbe).to.include({ name: 'SbeDecodeError', code: 'TRUNCATED', retryable: false });
    const book = new BookArgumentError('BTCUSDT', 'negative');
    expect(book).to.include({
      name: 'BookArgumentError',
      code: 'SCRIPT_ARGS',
      message: 'order book BTCUSDT: negative',
    });
    expect(book.context).to.deep.equal({ symbol: 'BTCUSDT' });
    expect(new TradeBatchError('x', 'ETHUSDT', 'SCRIPT_REPLY')).to.include({ code: 'SCRIPT_REPLY' });
  });

  it('isRetryable: an AggregatorError by its flag, REST failures that can pass, Redis outages by message', () => {
    expect(isRetryable(new RestTimeoutError('/p', 5))).to.equal(true);
    expect(isRetryable(new RestNetworkError('/p', new Error('fetch failed')))).to.equal(true);
    expect(isRetryable(new RestHttpError(503, '', undefined, '/p'))).to.equal(true);
    expect(isRetryable(new RestHttpError(429, '', 1000, '/p'))).to.equal(true);
    expect(isRetryable(new RestHttpError(418, '', 1000, '/p'))).to.equal(false);
    expect(isRetryable(new RestHttpError(400, '', undefined, '/p'))).to.equal(false);
    expect(isRetryable(new RestValidationError('/p', 'body', 'bad'))).to.equal(false);
    expect(isRetryable(new RestBannedError('/p', 0, 418))).to.equal(false);
    // The flag wins over the message: a typed error is not judged by its words.
    expect(isRetryable(new AggregatorError('Connection is closed.', { code: 'X' }))).to.equal(false);
    expect(isRetryable(new Error('Connection is closed.'))).to.equal(true);
    expect(isRetryable(new Error('WRONGTYPE Operation'))).to.equal(false);
  });

  it('a StateWriteError is retryable when the failure it wraps is', () => {
    expect(isRetryable(new StateWriteError('gave up', 3, new Error('READONLY replica')))).to.equal(true);
    expect(isRetryable(new StateWriteError('rejected', 1, new Error('WRONGTYPE x')))).to.equal(false);
    expect(new StateWriteError('m', 1, undefined).code).to.equal('STATE_WRITE');
  });

  it('errorContext drops undefined fields; errorMessage reads anything thrown', () => {
    expect(errorContext({ symbol: 'S', shard: undefined, sequenceNumber: '42' })).to.deep.equal({
      symbol: 'S',
      sequenceNumber: '42',
    });
    expect(errorMessage(new Error('a'))).to.equal('a');
    expect(errorMessage('b')).to.equal('b');
  });
});

describe('state/errors: the one table of the Lua scripts error codes', () => {
  it('every code the scripts raise is in the table, each refusing arguments (SCRIPT_ARGS)', () => {
    expect(Object.keys(SCRIPT_ERROR_CODES).sort()).to.deep.equal(['BADARGS', 'BOOKARGS', 'ERR_TRADE_ARGS']);
    for (const entry of Object.values(SCRIPT_ERROR_CODES))
      expect(entry.deadLetterCode).to.equal('SCRIPT_ARGS');
  });

  it('scriptErrorCode reads the first word of an error reply, only when it is a whole word of the table', () => {
    expect(scriptErrorCode(reply('BOOKARGS U > u'))).to.equal('BOOKARGS');
    expect(scriptErrorCode(reply('ERR_TRADE_ARGS trade id is not a decimal id: x'))).to.equal(
      'ERR_TRADE_ARGS',
    );
    expect(scriptErrorCode(reply('BADARGS weight 0'))).to.equal('BADARGS');
    expect(scriptErrorCode(reply('BOOKARGS'))).to.equal('BOOKARGS');
    expect(scriptErrorCode(reply('BOOKARGSX y'))).to.equal(undefined);
    expect(scriptErrorCode(reply('ERR something'))).to.equal(undefined);
    expect(scriptErrorCode(reply('WRONGTYPE Operation'))).to.equal(undefined);
    expect(scriptErrorCode(reply('x BOOKARGS'))).to.equal(undefined);
    expect(scriptErrorCode('BOOKARGS x')).to.equal(undefined);
  });

  it('a refused call of any script is dead-lettered SCRIPT_ARGS, another error reply SCRIPT_ERROR', () => {
    expect(toContained(reply('BADARGS weight 0'), 'x').code).to.equal('SCRIPT_ARGS');
    expect(toContained(reply('ERR_TRADE_ARGS bad'), 'x').code).to.equal('SCRIPT_ARGS');
    expect(toContained(reply('ERR user_script:1: boom'), 'x').code).to.equal('SCRIPT_ERROR');
  });

  it('a contained failure carries its context', () => {
    const err = toContained(reply('BOOKARGS U > u'), 'depth of BTCUSDT', {
      symbol: 'BTCUSDT',
      shard: 'shardId-000000000001',
      sequenceNumber: undefined,
    });
    expect(err.context).to.deep.equal({ symbol: 'BTCUSDT', shard: 'shardId-000000000001' });
    expect(err.message).to.equal('depth of BTCUSDT: BOOKARGS U > u');
  });

  it('bookScriptError: outages stay as they are; a script error code becomes BookScriptError with it', () => {
    const outage = new Error('Connection is closed.');
    expect(bookScriptError('anchorBook', 'S', outage)).to.equal(outage);
    const refused = bookScriptError('anchorBook', 'S', reply('BOOKARGS levels'));
    expect(refused).to.be.instanceOf(BookScriptError);
    expect(refused).to.include({ code: 'BOOKARGS', deadLetterCode: 'SCRIPT_ARGS', symbol: 'S' });
    expect((refused as BookScriptError).context).to.deep.equal({ symbol: 'S', script: 'anchorBook' });
    expect(bookScriptError('applyBestBidAsk', 'S', reply('ERR boom'))).to.include({
      code: 'SCRIPT',
      deadLetterCode: 'SCRIPT_ERROR',
    });
  });

  it('an unreadable reply of a coordination script is a ScriptReplyError naming the script (SCRIPT_REPLY)', () => {
    let caught: unknown;
    try {
      parseAcquireReply([7, 'x']);
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(ScriptReplyError);
    expect(caught).to.include({
      code: 'SCRIPT_REPLY',
      deadLetterCode: 'SCRIPT_REPLY',
      script: 'reanchorAcquire',
    });
    expect(() => leaseOutcome(9)).to.throw(
      ScriptReplyError,
      'renew-feature-lease returned an unknown code 9',
    );
    expect(toContained(new ScriptReplyError('writeFeatures', 'bad'), 'x').code).to.equal('SCRIPT_REPLY');
  });
});
