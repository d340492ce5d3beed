import { expect } from 'chai';
import sinon from 'sinon';
import { silentLogger } from '../../../src/logging/logger';
import {
  describeFailure,
  Reanchorer,
  type ReanchorerOptions,
  type SnapshotSource,
} from '../../../src/reanchor/reanchorer';
import { Keys } from '../../../src/state/keys';
import type { RedisClient } from '../../../src/state/redis';

// Only the pure parts: run() builds and swaps against Redis and is covered by the integration tests.

/** A client that fails the test on any use: the parts tested here must not touch Redis. */
const untouchable = new Proxy(
  {},
  {
    get(_target, property) {
      throw new Error(`unexpected Redis client use: ${String(property)}`);
    },
  },
) as RedisClient;

const source: SnapshotSource = {
  getDepth: () => Promise.reject(new Error('unexpected REST call')),
  getTrades: () => Promise.reject(new Error('unexpected REST call')),
};

function options(overrides: Partial<ReanchorerOptions> = {}): ReanchorerOptions {
  return {
    client: untouchable,
    keys: new Keys({ clusterMode: false }),
    source,
    logger: silentLogger(),
    depthLimit: 1000,
    tradesLimit: 1000,
    levels: 20,
    maxAttempts: 5,
    backoffBaseMs: 100,
    backoffMaxMs: 1_000,
    ...overrides,
  };
}

describe('reanchor/Reanchorer (pure parts)', () => {
  describe('constructor', () => {
    it('accepts a positive integer maxAttempts without touching Redis or REST', () => {
      for (const maxAttempts of [1, 2, 100]) {
        expect(() => new Reanchorer(options({ maxAttempts }))).to.not.throw();
      }
    });

    it('rejects a maxAttempts that is not a positive integer, with an exact message', () => {
      for (const maxAttempts of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(() => new Reanchorer(options({ maxAttempts })), String(maxAttempts)).to.throw(
          RangeError,
          `maxAttempts must be a positive integer, got ${maxAttempts}`,
        );
      }
    });
  });

  describe('backoffMs', () => {
    it('doubles from backoffBaseMs per failed attempt up to backoffMaxMs (top of the jitter)', () => {
      const reanchorer = new Reanchorer(options({ rng: () => 0.999_999_999 }));
      expect([1, 2, 3, 4, 5, 6, 10].map((n) => reanchorer.backoffMs(n))).to.deep.equal([
        100, 200, 400, 800, 1_000, 1_000, 1_000,
      ]);
    });

    it('is jittered down to 50 % of the ceiling (bottom of the jitter)', () => {
      const reanchorer = new Reanchorer(options({ rng: () => 0 }));
      expect([1, 2, 3, 4, 5, 6].map((n) => reanchorer.backoffMs(n))).to.deep.equal([
        50, 100, 200, 400, 500, 500,
      ]);
    });

    it('maps the rng linearly into [50 %, 100 %] of the ceiling and draws once per call', () => {
      const rng = sinon.stub<[], number>();
      rng.onCall(0).returns(0.5);
      rng.onCall(1).returns(0.25);
      rng.onCall(2).returns(0.5);
      const reanchorer = new Reanchorer(options({ rng }));
      expect(reanchorer.backoffMs(1)).to.equal(75); // 100 x 0.75
      expect(reanchorer.backoffMs(3)).to.equal(250); // 400 x 0.625
      expect(reanchorer.backoffMs(9)).to.equal(750); // capped 1000 x 0.75
      expect(rng.callCount).to.equal(3);
    });

    it('stays within [50 %, 100 %] of min(max, base x 2^(n-1)) for any rng value in [0, 1)', () => {
      let seed = 12345;
      const lcg = () => {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      const reanchorer = new Reanchorer(options({ backoffBaseMs: 300, backoffMaxMs: 10_000, rng: lcg }));
      for (let i = 0; i < 2_000; i++) {
        const n = 1 + (i % 12);
        const ceiling = Math.min(10_000, 300 * 2 ** (n - 1));
        const delay = reanchorer.backoffMs(n);
        expect(Number.isInteger(delay)).to.equal(true);
        expect(delay).to.be.at.least(Math.round(ceiling / 2));
        expect(delay).to.be.at.most(ceiling);
      }
    });

    it('never exceeds backoffMaxMs, even for a huge number of failed attempts', () => {
      const reanchorer = new Reanchorer(options({ rng: () => 0.999_999_999 }));
      expect(reanchorer.backoffMs(60)).to.equal(1_000);
      expect(reanchorer.backoffMs(2_000)).to.equal(1_000); // 2^1999 is Infinity; the cap still applies
    });

    it('a base above the cap is capped from the first retry', () => {
      const reanchorer = new Reanchorer(options({ backoffBaseMs: 5_000, backoffMaxMs: 1_000, rng: () => 0 }));
      expect(reanchorer.backoffMs(1)).to.equal(500);
    });

    it('a zero base or cap means no wait', () => {
      expect(new Reanchorer(options({ backoffBaseMs: 0, rng: () => 0.9 })).backoffMs(3)).to.equal(0);
      expect(new Reanchorer(options({ backoffMaxMs: 0, rng: () => 0.9 })).backoffMs(3)).to.equal(0);
    });

    it('defaults to Math.random for the jitter', () => {
      const random = sinon.stub(Math, 'random').returns(0);
      try {
        expect(new Reanchorer(options()).backoffMs(2)).to.equal(100);
        expect(random.callCount).to.equal(1);
      } finally {
        random.restore();
      }
    });
  });

  describe('describeFailure', () => {
    it('rest, build and swap-error: "<stage>: <error>"', () => {
      expect(describeFailure({ stage: 'rest', error: 'RestError: HTTP 429' })).to.equal(
        'rest: RestError: HTTP 429',
      );
      expect(describeFailure({ stage: 'build', error: 'Error: bad level' })).to.equal(
        'build: Error: bad level',
      );
      expect(describeFailure({ stage: 'swap-error', error: 'ReplyError: NOSCRIPT' })).to.equal(
        'swap-error: ReplyError: NOSCRIPT',
      );
    });

    it('a refused swap, with the lastUpdateId a snapshot would need when known', () => {
      expect(
        describeFailure({ stage: 'swap', outcome: 'too_old', neededLastUpdateId: 123_456_789_012n }),
      ).to.equal('swap refused: too_old (needs lastUpdateId >= 123456789012)');
      expect(describeFailure({ stage: 'swap', outcome: 'buffer_gap', neededLastUpdateId: 7n })).to.equal(
        'swap refused: buffer_gap (needs lastUpdateId >= 7)',
      );
      for (const outcome of [
        'nothing_to_swap',
        'temporary_missing',
        'temporary_incomplete',
        'other_attempt',
        'crossed',
      ] as const) {
        expect(describeFailure({ stage: 'swap', outcome, neededLastUpdateId: undefined })).to.equal(
          `swap refused: ${outcome}`,
        );
      }
    });

    it('lock lost', () => {
      expect(describeFailure({ stage: 'lock-lost' })).to.equal('lock lost to another listener');
    });

    it('an id of 0 is still shown (not treated as unknown)', () => {
      expect(describeFailure({ stage: 'swap', outcome: 'too_old', neededLastUpdateId: 0n })).to.equal(
        'swap refused: too_old (needs lastUpdateId >= 0)',
      );
    });
  });
});
