import { expect } from 'chai';
import { parseServedLines } from '../../../src/features/served-lines';
import type { DatasetRow } from '../../../src/dataset/builder';
import { csvText, datasetColumns } from '../../../src/dataset/output';
import { parseCsv } from '../../../src/dataset/read';
import { FEATURE_NAMES, WATERMARK_FIELDS } from '../../../src/features/compute';

// Issue 16, `dataset verify`: the CSV form read back, the served export's lines. Pure.

const row: DatasetRow = {
  symbol: 'BTCUSDT',
  tickMs: 1_760_000_012_000,
  vector: {
    ...Object.fromEntries(FEATURE_NAMES.map((n) => [n, 0.1 + 0.2])),
    feature_ts: 1_760_000_012_000,
    schema_version: 2,
    ...Object.fromEntries(WATERMARK_FIELDS.map((n) => [n, ''])),
    src_last_trade_id: '12345678901234567890',
  },
  labels: ['60000.12345678', 'a "quoted", value', 0.001],
};

describe('dataset read (issue 16)', () => {
  it('parseCsv reads csvText back: the header, quoted fields, numbers in round-trip form', () => {
    const [header, first, ...rest] = parseCsv(csvText([row], [10_000]));
    expect(header).to.deep.equal(datasetColumns([10_000]).map((c) => c.name));
    expect(rest).to.deep.equal([]);
    const at = (name: string) => first![header!.indexOf(name)];
    expect(at('symbol')).to.equal('BTCUSDT');
    expect(Number(at('imbalance_1s') ?? at(FEATURE_NAMES[0]!))).to.equal(0.1 + 0.2);
    expect(at('src_last_trade_id')).to.equal('12345678901234567890');
    expect(at('label_price_10s')).to.equal('a "quoted", value');
    expect(at('src_bba_update_id')).to.equal('');
  });

  it('parseServedLines: one vector per line, grouped by symbol; a line that is not one names its number', () => {
    const served = parseServedLines(
      '{"symbol":"BTCUSDT","id":"2000-0","fields":{"feature_ts":"2000"}}\n\n' +
        '{"symbol":"ETHUSDT","fields":{"feature_ts":"4000","spread":1}}\n',
      'f.jsonl',
    );
    expect([...served.keys()]).to.deep.equal(['BTCUSDT', 'ETHUSDT']);
    expect(served.get('ETHUSDT')).to.deep.equal([
      { id: '4000-0', fields: { feature_ts: '4000', spread: '1' } },
    ]);
    expect(() => parseServedLines('{"id":"1"}\n', 'f.jsonl')).to.throw(
      'f.jsonl line 1: want {"symbol": ..., "id": ..., "fields": {...}}',
    );
    expect(() => parseServedLines('x\n', 'f.jsonl')).to.throw('f.jsonl line 1: not JSON');
  });
});
