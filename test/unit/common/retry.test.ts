import { expect } from 'chai';
import { AggregatorError } from '../../../src/common/errors';
import { backoff, backoffDelay, jittered, retry, sleep, type RetryOptions } from '../../../src/common/retry';

/** A fake clock advanced only by the injected sleep. */
function fakeTime(start = 1_000) {
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

const transient = () => new Error('Connection is closed.');

describe('common/retry', () => {
  describe('backoff', () => {
    it('is min(max, base x 2^(retry - 1)), retry counted from 1', () => {
      expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, 100, 1000))).to.deep.equal([
        100, 200, 400, 800, 1000,
      ]);
      expect(backoffDelay(0, 100, 1000)).to.equal(100);
      expect(backoffDelay(-3, 100, 1000)).to.equal(100);
    });

    it('a zero base is no wait however many retries (never NaN)', () => {
      expect(backoffDelay(2000, 0, 1000)).to.equal(0);
      expect(backoffDelay(2000, 1, 1000)).to.equal(1000);
    });

    it('jitters into [50 %, 100 %] of the ceiling, rounded, one draw per delay', () => {
      let draws = 0;
      const random = () => {
        draws++;
        return 0.5;
      };
      expect(backoff(1, { baseDelayMs: 100, maxDelayMs: 1000 }, random)).to.equal(75);
      expect(backoff(9, { baseDelayMs: 100, maxDelayMs: 1000 }, random)).to.equal(750);
      expect(draws).to.equal(2);
      expect(jittered(1000, 0)).to.equal(500);
      expect(jittered(1000, 0.999_999)).to.equal(1000);
    });

    it('without jitter draws nothing and gives the ceiling', () => {
      const random = () => {
        throw new Error('drawn');
      };
      expect(
        [1, 2, 3, 6, 7].map((n) => backoff(n, { baseDelayMs: 200, maxDelayMs: 5000, jitter: false }, random)),
      ).to.deep.equal([200, 400, 800, 5000, 5000]);
    });
  });

  describe('retry', () => {
    function options(time: ReturnType<typeof fakeTime>, overrides: Partial<RetryOptions> = {}): RetryOptions {
      return {
        baseDelayMs: 100,
        maxDelayMs: 1000,
        jitter: false,
        now: time.now,
        sleep: time.sleep,
        ...overrides,
      };
    }

    it('returns the first success, passing the attempt number', async () => {
      const time = fakeTime();
      const seen: number[] = [];
      const result = await retry((attempt) => {
        seen.push(attempt);
        return attempt < 3 ? Promise.reject(transient()) : Promise.resolve('ok');
      }, options(time));
      expect(result).to.equal('ok');
      expect(seen).to.deep.equal([1, 2, 3]);
      expect(time.sleeps).to.deep.equal([100, 200]);
    });

    it('a failure that is not retryable is thrown at once, unchanged by default', async () => {
      const time = fakeTime();
      const boom = new Error('WRONGTYPE Operation against a key');
      expect(await rejection(retry(() => Promise.reject(boom), options(time)))).to.equal(boom);
      expect(time.sleeps).to.deep.equal([]);
    });

    it('the default predicate is isRetryable: an AggregatorError says it itself', async () => {
      const time = fakeTime();
      let calls = 0;
      const flagged = new AggregatorError('try later', { code: 'X', retryable: true });
      await rejection(
        retry(
          () => {
            calls++;
            return Promise.reject(flagged);
          },
          options(time, { retries: 2 }),
        ),
      );
      expect(calls).to.equal(3);
    });

    it('gives up after `retries` retries with the last failure, or what giveUp makes of it', async () => {
      const time = fakeTime();
      const reasons: string[] = [];
      const err = await rejection(
        retry(() => Promise.reject(transient()), {
          ...options(time, { retries: 2 }),
          giveUp: (e, attempts, reason) => {
            reasons.push(reason);
            return new Error(`gave up after ${attempts}: ${(e as Error).message}`);
          },
        }),
      );
      expect((err as Error).message).to.equal('gave up after 3: Connection is closed.');
      expect(reasons).to.deep.equal(['retries']);
      expect(time.sleeps).to.deep.equal([100, 200]);
    });

    it('starts no attempt whose wait would end after the deadline', async () => {
      const time = fakeTime(0);
      const reasons: string[] = [];
      let calls = 0;
      await rejection(
        retry(
          () => {
            calls++;
            return Promise.reject(transient());
          },
          options(time, { deadline: 650, giveUp: (e, _n, reason) => (reasons.push(reason), e) }),
        ),
      );
      // waits 100, 200 (t = 300), then 400 would end at 700 > 650
      expect(time.sleeps).to.deep.equal([100, 200]);
      expect(calls).to.equal(3);
      expect(reasons).to.deep.equal(['deadline']);
    });

    it('delayFor replaces the backoff, draws it only when asked, and may stop the loop by throwing', async () => {
      const time = fakeTime();
      let draws = 0;
      const random = () => {
        draws++;
        return 0;
      };
      const failures = [new Error('ETIMEDOUT a'), new Error('ETIMEDOUT b'), new Error('ETIMEDOUT stop')];
      const stop = new Error('stopped');
      const err = await rejection(
        retry(() => Promise.reject(failures.shift() ?? new Error('none left')), {
          ...options(time, { jitter: true, random }),
          delayFor: (e, backoffMs) => {
            const message = (e as Error).message;
            if (message.endsWith('a')) return 5;
            if (message.endsWith('b')) return backoffMs();
            throw stop;
          },
        }),
      );
      expect(err).to.equal(stop);
      expect(time.sleeps).to.deep.equal([5, 100]); // retry 2: 200 jittered to 50 % by random 0
      expect(draws).to.equal(1);
    });

    it('onRetry sees each failed attempt and its wait', async () => {
      const time = fakeTime();
      const seen: Array<[number, number]> = [];
      await rejection(
        retry(() => Promise.reject(transient()), {
          ...options(time, { retries: 3 }),
          onRetry: (attempt, _err, delayMs) => seen.push([attempt, delayMs]),
        }),
      );
      expect(seen).to.deep.equal([
        [1, 100],
        [2, 200],
        [3, 400],
      ]);
    });

    it('an aborted signal starts no new attempt', async () => {
      const controller = new AbortController();
      let calls = 0;
      const reasons: string[] = [];
      const err = await rejection(
        retry(
          () => {
            calls++;
            controller.abort();
            return Promise.reject(transient());
          },
          {
            baseDelayMs: 60_000,
            maxDelayMs: 60_000,
            signal: controller.signal,
            giveUp: (e, _n, reason) => (reasons.push(reason), e),
          },
        ),
      );
      expect((err as Error).message).to.equal('Connection is closed.');
      expect(calls).to.equal(1);
      expect(reasons).to.deep.equal(['aborted']);
    });

    it('sleep ends early when its signal aborts', async () => {
      const controller = new AbortController();
      const started = Date.now();
      setTimeout(() => controller.abort(), 10);
      await sleep(60_000, controller.signal);
      expect(Date.now() - started).to.be.below(5_000);
      await sleep(60_000, controller.signal); // already aborted: at once
    });
  });
});
