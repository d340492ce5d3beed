import { expect } from 'chai';
import {
  formatServedLine,
  parseServedLines,
  servedVectorOf,
  ServedLinesError,
} from '../../../src/features/served-lines';

describe('features/served-lines: the export format of served vectors', () => {
  it('an XRANGE entry becomes a served vector; a line reads back as the vector it was written from', () => {
    const v = servedVectorOf('1700000002000-0', [
      'feature_ts',
      '1700000002000',
      'src_last_trade_id',
      '12345678901234567890',
      'spread_bp',
      '0.1',
    ]);
    expect(v).to.deep.equal({
      id: '1700000002000-0',
      fields: { feature_ts: '1700000002000', src_last_trade_id: '12345678901234567890', spread_bp: '0.1' },
    });
    const text = `${formatServedLine('BTCUSDT', v)}\n${formatServedLine('ETHUSDT', v)}\n${formatServedLine('BTCUSDT', { ...v, id: '1700000004000-0' })}\n`;
    const back = parseServedLines(text, 'x.jsonl');
    expect([...back.keys()]).to.deep.equal(['BTCUSDT', 'ETHUSDT']);
    expect(back.get('BTCUSDT')).to.deep.equal([v, { ...v, id: '1700000004000-0' }]);
    expect(back.get('ETHUSDT')).to.deep.equal([v]);
  });

  it('a bad line is a ServedLinesError naming the file and line', () => {
    const err = (() => {
      try {
        parseServedLines('\n{"symbol":"BTCUSDT","fields":{}}\n[1]\n', 'f.jsonl');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).to.be.instanceOf(ServedLinesError);
    expect((err as ServedLinesError).code).to.equal('SERVED_LINES');
    expect((err as Error).message).to.equal(
      'f.jsonl line 3: want {"symbol": ..., "id": ..., "fields": {...}}',
    );
  });
});
