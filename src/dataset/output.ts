import fs from 'node:fs';
// hyparquet-writer (Hyperparam, MIT): pure JavaScript with one dependency of its own (the hyparquet reader), no
// native code or install scripts, typed columns (INT64 as bigint, DOUBLE, UTF8 strings), nullable columns and
// key-value metadata; maintained (monthly releases). @dsnp/parquetjs pulls a large dependency tree (thrift,
// brotli, lzo, ...) and parquet-wasm needs Arrow tables built first. ESM-only: Node 24 loads it with require().
import { ByteWriter, parquetWrite } from 'hyparquet-writer';
import { FEATURE_NAMES, WATERMARK_FIELDS } from '../features/compute';
import type { DatasetRow } from './builder';
import { labelColumns } from './labels';

// A dataset's columns and its two file formats (issue 16). Row order: tick, then symbol. Columns: symbol,
// tick_ms (int64, ms since the epoch: the served vector's feature_ts), every feature in served order
// (FEATURE_NAMES: doubles; feature_ts int64, schema_version int32), the input watermarks (exact decimal strings,
// "" when unknown), then per horizon the labels (label_mid_<H>, label_price_<H>: exact decimal strings;
// label_ret_<H>: double; null when empty).

export type ColumnType = 'string' | 'int64' | 'int32' | 'double';

export interface DatasetColumn {
  readonly name: string;
  readonly type: ColumnType;
  /** Labels may be empty (null); every other column always has a value. */
  readonly nullable: boolean;
}

/** The columns of a dataset with these horizons, in file order. Pure. */
export function datasetColumns(horizonsMs: readonly number[]): DatasetColumn[] {
  const featureType = (name: string): ColumnType =>
    name === 'feature_ts' ? 'int64' : name === 'schema_version' ? 'int32' : 'double';
  return [
    { name: 'symbol', type: 'string', nullable: false },
    { name: 'tick_ms', type: 'int64', nullable: false },
    ...FEATURE_NAMES.map((name) => ({ name, type: featureType(name), nullable: false })),
    ...WATERMARK_FIELDS.map((name) => ({ name, type: 'string' as const, nullable: false })),
    ...labelColumns(horizonsMs).map((c) => ({ name: c.name, type: c.type, nullable: true })),
  ];
}

type Cell = string | number | bigint | null;

/** A row's cells in column order, typed as the column says. Pure. */
export function rowCells(row: DatasetRow, columns: readonly DatasetColumn[]): Cell[] {
  const fixed = columns.length - row.labels.length;
  return columns.map((column, i) => {
    if (i >= fixed) return row.labels[i - fixed] ?? null;
    if (column.name === 'symbol') return row.symbol;
    if (column.name === 'tick_ms') return BigInt(row.tickMs);
    const raw = row.vector[column.name];
    switch (column.type) {
      case 'string':
        return raw === undefined ? '' : String(raw);
      case 'int64':
        return BigInt(Math.trunc(Number(raw ?? 0)));
      default:
        return Number(raw ?? 0);
    }
  });
}

/** Key-value metadata of a dataset file. */
export interface DatasetMetadata {
  readonly schemaVersion: number;
  readonly commandLine: string;
  /** The input range: archive, symbols, from/to, interval, horizons, latency (JSON-serialisable). */
  readonly inputRange: Readonly<Record<string, unknown>>;
}

export function metadataEntries(metadata: DatasetMetadata): Array<{ key: string; value: string }> {
  return [
    { key: 'schema_version', value: String(metadata.schemaVersion) },
    { key: 'command_line', value: metadata.commandLine },
    { key: 'input_range', value: JSON.stringify(metadata.inputRange) },
  ];
}

const PARQUET_TYPE = { string: 'STRING', int64: 'INT64', int32: 'INT32', double: 'DOUBLE' } as const;

/** Writes the rows as Parquet (snappy, typed columns, the metadata as key-value metadata). */
export async function writeParquet(
  file: string,
  rows: readonly DatasetRow[],
  horizonsMs: readonly number[],
  metadata: DatasetMetadata,
): Promise<void> {
  const columns = datasetColumns(horizonsMs);
  const data: Cell[][] = columns.map(() => new Array<Cell>(rows.length));
  rows.forEach((row, r) => {
    rowCells(row, columns).forEach((cell, c) => {
      data[c]![r] = cell;
    });
  });
  const writer = new ByteWriter();
  // Synchronous with a ByteWriter; awaited because its signature allows a promise (asynchronous writers).
  await parquetWrite({
    writer,
    columnData: columns.map((column, c) => ({
      name: column.name,
      data: data[c]!,
      type: PARQUET_TYPE[column.type],
      nullable: column.nullable,
    })),
    kvMetadata: metadataEntries(metadata),
    createdBy: 'bitcoin-aggregator dataset build',
  });
  fs.writeFileSync(file, new Uint8Array(writer.getBuffer()));
}

/** One CSV field: quoted when it holds a comma, quote or line break; null is empty. Pure. */
export function csvField(cell: Cell): string {
  if (cell === null) return '';
  const text = String(cell);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The rows as CSV: a header line, then one line per row (numbers in JavaScript's shortest round-trip form). */
export function csvText(rows: readonly DatasetRow[], horizonsMs: readonly number[]): string {
  const columns = datasetColumns(horizonsMs);
  const lines = [columns.map((c) => csvField(c.name)).join(',')];
  for (const row of rows) lines.push(rowCells(row, columns).map(csvField).join(','));
  return `${lines.join('\n')}\n`;
}

export function writeCsv(file: string, rows: readonly DatasetRow[], horizonsMs: readonly number[]): void {
  fs.writeFileSync(file, csvText(rows, horizonsMs));
}
