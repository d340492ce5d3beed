import { expect } from 'chai';
import { attemptToken, parseAcquireReply, parseReleaseReply } from '../../../src/reanchor/lock';

describe('reanchor/lock replies', () => {
  describe('attemptToken', () => {
    it('is "<listener id>|<request id>"', () => {
      expect(attemptToken('sidecar-a:123', '1700000000000-0')).to.equal('sidecar-a:123|1700000000000-0');
    });

    it('ends with "|<request id>", which reanchor-acquire-3.lua matches to recognise a take-over', () => {
      const requestId = '1700000000000-7';
      const token = attemptToken('host|with|pipes', requestId);
      expect(token.endsWith(`|${requestId}`)).to.equal(true);
      expect(token.slice(-(requestId.length + 1))).to.equal(`|${requestId}`);
    });

    it('differs for two listeners running the same request', () => {
      expect(attemptToken('a', '1-0')).to.not.equal(attemptToken('b', '1-0'));
    });
  });

  describe('parseAcquireReply', () => {
    it('1: acquired (the script returns an empty holder)', () => {
      expect(parseAcquireReply([1, ''])).to.deep.equal({ outcome: 'acquired', holder: '' });
    });

    it('2: taken over, with the token that held the lock', () => {
      expect(parseAcquireReply([2, 'dead-listener|5-0'])).to.deep.equal({
        outcome: 'taken-over',
        holder: 'dead-listener|5-0',
      });
    });

    it('0: coalesced, with the holder of the running re-anchor', () => {
      expect(parseAcquireReply([0, 'other|4-0'])).to.deep.equal({
        outcome: 'coalesced',
        holder: 'other|4-0',
      });
      expect(parseAcquireReply([0, ''])).to.deep.equal({ outcome: 'coalesced', holder: '' });
    });

    it('throws on a malformed reply, quoting it', () => {
      const malformed: unknown[] = [
        null,
        undefined,
        1,
        'OK',
        {},
        [],
        [1],
        [1, '', 'extra'],
        [3, 'x'],
        [-1, 'x'],
        ['1', ''],
        [null, ''],
        [1.5, ''],
      ];
      for (const reply of malformed) {
        expect(() => parseAcquireReply(reply), JSON.stringify(reply) ?? 'undefined').to.throw(
          Error,
          `reanchorAcquire: unexpected reply ${JSON.stringify(reply)}`,
        );
      }
    });
  });

  describe('parseReleaseReply', () => {
    it('released, nothing pending', () => {
      expect(parseReleaseReply([1, 0, '', '', 0, ''])).to.deep.equal({
        released: true,
        pendingCount: 0,
        pendingLatestMs: undefined,
        pendingReason: '',
        pendingBookCount: 0,
        pendingBookLatestMs: undefined,
      });
    });

    it('not released (gone already or held by another token), nothing pending', () => {
      expect(parseReleaseReply([0, 0, '', '', 0, ''])).to.deep.equal({
        released: false,
        pendingCount: 0,
        pendingLatestMs: undefined,
        pendingReason: '',
        pendingBookCount: 0,
        pendingBookLatestMs: undefined,
      });
    });

    it('released with coalesced requests: their count, newest time and reason, and those needing the book', () => {
      expect(parseReleaseReply([1, 3, '1700000000456', 'stale', 2, '1700000000400'])).to.deep.equal({
        released: true,
        pendingCount: 3,
        pendingLatestMs: 1_700_000_000_456,
        pendingReason: 'stale',
        pendingBookCount: 2,
        pendingBookLatestMs: 1_700_000_000_400,
      });
    });

    it('not released, with a coalesced trade gap', () => {
      expect(parseReleaseReply([0, 1, '17', 'trade_gap', 0, ''])).to.deep.equal({
        released: false,
        pendingCount: 1,
        pendingLatestMs: 17,
        pendingReason: 'trade_gap',
        pendingBookCount: 0,
        pendingBookLatestMs: undefined,
      });
    });

    it('throws on a malformed reply, quoting it', () => {
      const malformed: unknown[] = [
        null,
        undefined,
        0,
        'OK',
        {},
        [],
        [1, 0, ''],
        [1, 0, '', '', ''],
        [1, 0, '', ''],
        [1, '0', '', '', 0, ''],
        [1, null, '', '', 0, ''],
        [1, 0, '', '', '0', ''],
      ];
      for (const reply of malformed) {
        expect(() => parseReleaseReply(reply), JSON.stringify(reply) ?? 'undefined').to.throw(
          Error,
          `reanchorRelease: unexpected reply ${JSON.stringify(reply)}`,
        );
      }
    });
  });
});
