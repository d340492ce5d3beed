import { expect } from 'chai';
import sinon from 'sinon';
import { isRetryable } from '../../../src/common/errors';
import { StateWriteError } from '../../../src/state/errors';
import { backoffDelay, jittered } from '../../../src/common/retry';
import { withRetry } from '../../../src/state/retry';
import type { RetryOptions } from '../../../src/state/retry';

/** A fake clock advanced only by the injected sleep, so deadlines are deterministic. */
function fakeTime(start = 1_000_000) {
  let now = start;
  const sleeps: number[] = [];
  return {
    now: () => now,
    sleep: (ms: number) => {
      sleeps.push(ms);
      now += ms;
      return Promise.resolve();
    },
    sleeps,
    advance(ms: number) {
      now += ms;
    },
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the promise to reject');
}

const closed = () => new Error('Connection is closed.');

describe('state/retry', () => {
  describe('backoffDelay', () => {
    it('doubles from the base and caps at the maximum', () => {
      expect([1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => backoffDelay(attempt, 50, 2000))).to.deep.equal([
        50, 100, 200, 400, 800, 1600, 2000, 2000,
      ]);
      expect(backoffDelay(0, 50, 2000)).to.equal(50);
      expect(backoffDelay(3, 100, 250)).to.equal(250);
      expect(backoffDelay(60, 1, 5000)).to.equal(5000);
    });
  });

  describe('isRetryable', () => {
    const retryable = [
      'LOADING Redis is loading the dataset in memory',
      'BUSY Redis is busy running a script.',
      'TRYAGAIN Multiple keys request during rehashing of slot',
      'CLUSTERDOWN The cluster is down',
      'MASTERDOWN Link with MASTER is down',
      "READONLY You can't write against a read only replica.",
      'NOREPLICAS Not enough good replicas to write.',
      'Connection is closed.',
      'Command timed out',
      'connect ECONNREFUSED 127.0.0.1:6390',
      'read ECONNRESET',
      'write EPIPE',
      'connect ETIMEDOUT',
      "Stream isn't writeable and enableOfflineQueue options is false",
      'Reached the max retries per request limit (which is 1). Refer to "maxRetriesPerRequest" option for details.',
      'Failed to refresh slots cache.',
      // A full (noeviction) or a failing-to-save Redis refuses writes until it recovers: no event is to blame.
      'OOM command not allowed when used memory > maxmemory.',
      "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
      // A cluster failover moved the slot (a pipeline ioredis did not follow by itself).
      'MOVED 8473 127.0.0.1:34687',
      'ASK 8473 127.0.0.1:34687',
    ];
    const permanent = [
      'ERR wrong number of arguments for command',
      'WRONGTYPE Operation against a key holding the wrong kind of value',
      'NOAUTH Authentication required.',
      'NOSCRIPT No matching script.',
      'ERR Error running script: attempt to compare nil with string',
      'something LOADING later in the text',
    ];
    for (const message of retryable) {
      it(`retries "${message}"`, () => expect(isRetryable(new Error(message))).to.equal(true));
    }
    for (const message of permanent) {
      it(`does not retry "${message}"`, () => expect(isRetryable(new Error(message))).to.equal(false));
    }
    it('does not retry non-Error values', () => {
      expect(isRetryable('Connection is closed.')).to.equal(false);
      expect(isRetryable(undefined)).to.equal(false);
      expect(isRetryable({ message: 'Connection is closed.' })).to.equal(false);
    });
  });

  describe('withRetry', () => {
    function options(time: ReturnType<typeof fakeTime>, overrides: Partial<RetryOptions> = {}): RetryOptions {
      return {
        deadline: time.now() + 60_000,
        retries: 5,
        baseDelayMs: 50,
        maxDelayMs: 2000,
        now: time.now,
        sleep: time.sleep,
        rng: () => 1, // no jitter: the delays below are exact
        ...overrides,
      };
    }

    it('jitters each delay to [50 %, 100 %] of the backoff, and without a retries limit the deadline alone ends it', async () => {
      const time = fakeTime();
      const delays: number[] = [];
      let calls = 0;
      const error = await rejection(
        withRetry(
          () => {
            calls++;
            return Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6379'));
          },
          {
            deadline: time.now() + 30_000,
            baseDelayMs: 100,
            maxDelayMs: 1000,
            now: time.now,
            sleep: time.sleep,
            rng: () => 0,
            onRetry: (_a, _e, delayMs) => delays.push(delayMs),
          },
        ),
      );
      expect(error).to.be.instanceOf(StateWriteError);
      expect(delays.slice(0, 5)).to.deep.equal([50, 100, 200, 400, 500]);
      expect(calls, 'about 30 s of 500 ms waits').to.be.within(55, 65);
      expect(jittered(1000, 0)).to.equal(500);
      expect(jittered(1000, 0.999999)).to.equal(1000);
    });

    it('returns the first success without sleeping', async () => {
      const time = fakeTime();
      const operation = sinon.stub().resolves('ok');
      expect(await withRetry(operation, options(time))).to.equal('ok');
      expect(operation.callCount).to.equal(1);
      expect(time.sleeps).to.deep.equal([]);
    });

    it('stops at once on a non-retryable error and wraps it', async () => {
      const time = fakeTime();
      const cause = new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
      const operation = sinon.stub().rejects(cause);
      const onRetry = sinon.spy();
      const err = await rejection(withRetry(operation, options(time, { onRetry })));
      expect(err).to.be.instanceOf(StateWriteError);
      const error = err as StateWriteError;
      expect(error.message).to.equal(
        'Redis rejected the update: WRONGTYPE Operation against a key holding the wrong kind of value',
      );
      expect(error.attempts).to.equal(1);
      expect(error.cause).to.equal(cause);
      expect(operation.callCount).to.equal(1);
      expect(onRetry.called).to.equal(false);
      expect(time.sleeps).to.deep.equal([]);
    });

    it('retries retryable errors with backoff until success, reporting each retry', async () => {
      const time = fakeTime();
      const operation = sinon.stub();
      operation.onCall(0).rejects(closed());
      operation.onCall(1).rejects(new Error('LOADING Redis is loading'));
      operation.onCall(2).rejects(closed());
      operation.onCall(3).resolves(42);
      const retries: Array<[number, string, number]> = [];
      const onRetry = (attempt: number, err: unknown, delayMs: number) => {
        retries.push([attempt, (err as Error).message, delayMs]);
      };
      expect(await withRetry(operation, options(time, { onRetry }))).to.equal(42);
      expect(operation.callCount).to.equal(4);
      expect(time.sleeps).to.deep.equal([50, 100, 200]);
      expect(retries).to.deep.equal([
        [1, 'Connection is closed.', 50],
        [2, 'LOADING Redis is loading', 100],
        [3, 'Connection is closed.', 200],
      ]);
    });

    it('a non-retryable error after retries stops the loop with its attempt count', async () => {
      const time = fakeTime();
      const operation = sinon.stub();
      operation.onCall(0).rejects(closed());
      operation.onCall(1).rejects(new Error('NOSCRIPT No matching script.'));
      const error = (await rejection(withRetry(operation, options(time)))) as StateWriteError;
      expect(error.message).to.equal('Redis rejected the update: NOSCRIPT No matching script.');
      expect(error.attempts).to.equal(2);
      expect(operation.callCount).to.equal(2);
    });

    it('makes exactly 1 + retries attempts', async () => {
      const time = fakeTime();
      const operation = sinon.stub().rejects(closed());
      const error = (await rejection(withRetry(operation, options(time, { retries: 3 })))) as StateWriteError;
      expect(error).to.be.instanceOf(StateWriteError);
      expect(error.message).to.equal('Redis update failed after 4 attempt(s): Connection is closed.');
      expect(error.attempts).to.equal(4);
      expect((error.cause as Error).message).to.equal('Connection is closed.');
      expect(operation.callCount).to.equal(4);
      expect(time.sleeps).to.deep.equal([50, 100, 200]);
    });

    it('retries: 0 means a single attempt', async () => {
      const time = fakeTime();
      const operation = sinon.stub().rejects(closed());
      const error = (await rejection(withRetry(operation, options(time, { retries: 0 })))) as StateWriteError;
      expect(error.message).to.equal('Redis update failed after 1 attempt(s): Connection is closed.');
      expect(operation.callCount).to.equal(1);
      expect(time.sleeps).to.deep.equal([]);
    });

    it('starts no attempt whose backoff would end past the deadline', async () => {
      const time = fakeTime(0);
      const operation = sinon.stub().rejects(closed());
      // t=0 fail, sleep 50 (50 <= 120); t=50 fail, 50+100 > 120: give up after 2 attempts.
      const error = (await rejection(
        withRetry(operation, options(time, { deadline: 120, retries: 100 })),
      )) as StateWriteError;
      expect(error.message).to.equal('Redis update failed after 2 attempt(s): Connection is closed.');
      expect(operation.callCount).to.equal(2);
      expect(time.sleeps).to.deep.equal([50]);
    });

    it('counts time spent inside the operation against the deadline', async () => {
      const time = fakeTime(0);
      // Each attempt takes 1 s (e.g. a command timeout) before failing.
      const operation = sinon.stub().callsFake(() => {
        time.advance(1000);
        return Promise.reject(new Error('Command timed out'));
      });
      const error = (await rejection(
        withRetry(operation, options(time, { deadline: 2500, retries: 100 })),
      )) as StateWriteError;
      // t=1000 fail, +50 ok; t=2050 fail, +100 = 2150 ok; t=3150 fail, past the deadline.
      expect(error.attempts).to.equal(3);
      expect(time.sleeps).to.deep.equal([50, 100]);
    });

    it('a deadline already past still allows the first attempt', async () => {
      const time = fakeTime(10_000);
      const operation = sinon.stub().resolves('done');
      expect(await withRetry(operation, options(time, { deadline: 0 }))).to.equal('done');
      const failing = sinon.stub().rejects(closed());
      const error = (await rejection(withRetry(failing, options(time, { deadline: 0 })))) as StateWriteError;
      expect(error.attempts).to.equal(1);
    });
  });
});
