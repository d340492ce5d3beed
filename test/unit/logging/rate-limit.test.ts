import { expect } from 'chai';
import { LogRateLimiter } from '../../../src/logging/rate-limit';

describe('logging/LogRateLimiter', () => {
  it('logs the first occurrence of a key, then at most once per interval with the count since', () => {
    let now = 0;
    const limiter = new LogRateLimiter(60_000, () => now);
    expect(limiter.hit('a')).to.deep.equal({ occurrences: 1 });
    expect(limiter.hit('a')).to.equal(undefined);
    expect(limiter.hit('b'), 'keys are independent').to.deep.equal({ occurrences: 1 });
    now = 30_000;
    expect(limiter.hit('a')).to.equal(undefined);
    now = 60_000;
    expect(limiter.hit('a')).to.deep.equal({ occurrences: 3 });
    expect(limiter.hit('a')).to.equal(undefined);
  });

  it('forgets the oldest key beyond its bound', () => {
    const limiter = new LogRateLimiter(60_000, () => 0, 2);
    limiter.hit('a');
    limiter.hit('b');
    limiter.hit('c');
    expect(limiter.hit('a'), 'a was forgotten: logged again').to.deep.equal({ occurrences: 1 });
    expect(limiter.hit('c')).to.equal(undefined);
  });
});
