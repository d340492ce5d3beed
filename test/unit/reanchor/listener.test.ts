import { expect } from 'chai';
import { followUpScope } from '../../../src/reanchor/listener';

// Which follow-up a finished run owes the requests coalesced into it (pure; the listener's integration tests in
// test/integration/reanchor.test.ts run it against a real Redis).

const none = {
  pendingCount: 0,
  pendingLatestMs: undefined,
  pendingBookCount: 0,
  pendingBookLatestMs: undefined,
};

describe('reanchor/listener: followUpScope', () => {
  it('nothing coalesced: no follow-up, whatever the run', () => {
    expect(followUpScope('book', 1000, none)).to.equal(undefined);
    expect(followUpScope('trades', undefined, none)).to.equal(undefined);
  });

  it('a book run covers every request made before its REST fetch, trade gaps included', () => {
    const before = { pendingCount: 3, pendingLatestMs: 900, pendingBookCount: 1, pendingBookLatestMs: 800 };
    expect(followUpScope('book', 1000, before)).to.equal(undefined);
  });

  it('after a book run: a book request after its fetch -> a book follow-up; only trade gaps after it -> a repair', () => {
    expect(
      followUpScope('book', 1000, {
        pendingCount: 2,
        pendingLatestMs: 1000,
        pendingBookCount: 1,
        pendingBookLatestMs: 1000,
      }),
    ).to.equal('book');
    expect(
      followUpScope('book', 1000, {
        pendingCount: 2,
        pendingLatestMs: 1200,
        pendingBookCount: 1,
        pendingBookLatestMs: 900,
      }),
    ).to.equal('trades');
  });

  it('a trade repair never covers a book request, even one made before its fetch', () => {
    expect(
      followUpScope('trades', 1000, {
        pendingCount: 1,
        pendingLatestMs: 500,
        pendingBookCount: 1,
        pendingBookLatestMs: 500,
      }),
    ).to.equal('book');
  });

  it('a trade repair covers the trade gaps before its fetch, not those after', () => {
    expect(
      followUpScope('trades', 1000, {
        pendingCount: 2,
        pendingLatestMs: 999,
        pendingBookCount: 0,
        pendingBookLatestMs: undefined,
      }),
    ).to.equal(undefined);
    expect(
      followUpScope('trades', 1000, {
        pendingCount: 2,
        pendingLatestMs: 1001,
        pendingBookCount: 0,
        pendingBookLatestMs: undefined,
      }),
    ).to.equal('trades');
  });

  it('a failed run (no fetch) covers nothing: a book follow-up if any request needs the book, else a repair', () => {
    expect(
      followUpScope('trades', undefined, {
        pendingCount: 2,
        pendingLatestMs: 5,
        pendingBookCount: 1,
        pendingBookLatestMs: 4,
      }),
    ).to.equal('book');
    expect(
      followUpScope('book', undefined, {
        pendingCount: 1,
        pendingLatestMs: 5,
        pendingBookCount: 0,
        pendingBookLatestMs: undefined,
      }),
    ).to.equal('trades');
  });
});
