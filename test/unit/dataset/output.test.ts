import { expect } from 'chai';
import type { DatasetRow } from '../../../src/dataset/builder';
import { csvField, csvText, datasetColumns, metadataEntries, rowCells } from '../../../src/dataset/output';
import { FEATURE_NAMES, WATERMARK_FIELDS } from '../../../src/features/compute';

// Issue 16: a dataset's columns, cells and CSV form. Pure.

const row: DatasetRow = {
  symbol: 'BTCUSDT',
  tickMs: 1_760_000_012_000,
  vector: {
    ...Object.fromEntries(FEATURE_NAMES.map((n) => [n, 0.25])),
    feature_ts: 1_760_000_012_000,
    schema_version: 2,
    ...Object.fromEntries(WATERMARK_FIELDS.map((n) => [n, ''])),
    src_last_trade_id: '12345678901234567890',
  },
  labels: ['60000.12345678', '60000.10000000', 0.001, null, null, null],
};

describe('dataset output (issue 16)', () => {
  it('columns: symbol, tick_ms, the features in served order, the watermarks, the labels', () => {
    const columns = datasetColumns([2000, 10_000]);
    expect(columns.map((c) => c.name)).to.deep.equal([
      'symbol',
      'tick_ms',
      ...FEATURE_NAMES,
      ...WATERMARK_FIELDS,
      'label_mid_2s',
      'label_price_2s',
      'label_ret_2s',
      'label_mid_10s',
      'label_price_10s',
      'label_ret_10s',
    ]);
    const type = new Map(columns.map((c) => [c.name, c.type]));
    expect([
      type.get('tick_ms'),
      type.get('feature_ts'),
      type.get('schema_version'),
      type.get('price'),
    ]).to.deep.equal(['int64', 'int64', 'int32', 'double']);
    expect(columns.filter((c) => c.nullable).map((c) => c.name)).to.have.length(6);
  });

  it('cells typed as their column: bigint times, exact ids as strings, labels as given', () => {
    const cells = rowCells(row, datasetColumns([2000, 10_000]));
    expect(cells.slice(0, 2)).to.deep.equal(['BTCUSDT', 1_760_000_012_000n]);
    expect(cells).to.include('12345678901234567890');
    expect(cells.slice(-6)).to.deep.equal(row.labels);
  });

  it('CSV: a header and one line per row, empty labels empty, fields quoted when needed', () => {
    const lines = csvText([row], [2000, 10_000]).split('\n');
    expect(lines).to.have.length(3);
    expect(lines[0]!.split(',')[0]).to.equal('symbol');
    expect(lines[1]!.endsWith('60000.12345678,60000.10000000,0.001,,,')).to.equal(true);
    expect([csvField('a,b'), csvField('say "x"'), csvField(null), csvField(1n)]).to.deep.equal([
      '"a,b"',
      '"say ""x"""',
      '',
      '1',
    ]);
  });

  it('metadata: schema_version, the command line and the input range as JSON', () => {
    expect(
      metadataEntries({
        schemaVersion: 2,
        commandLine: 'aggregator dataset build',
        inputRange: { from_ms: 1 },
      }),
    ).to.deep.equal([
      { key: 'schema_version', value: '2' },
      { key: 'command_line', value: 'aggregator dataset build' },
      { key: 'input_range', value: '{"from_ms":1}' },
    ]);
  });
});
