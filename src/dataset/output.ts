// hyparquet-writer (Hyperparam, MIT): pure JavaScript with one dependency of its own (the hyparquet reader), no
// native code or install scripts, typed columns (INT64 as bigint, DOUBLE, UTF8 strings), nullable columns and
// key-value metadata; maintained (monthly releases). @dsnp/parquetjs pulls a large dependency tree (thrift,
// brotli, lzo, ...) and parquet-wasm needs Arrow tables built first. ESM-only: Node 24 loads it with require().
import { ByteWriter, ParquetWriter, schemaFromColumnData } from 'hyparquet-writer';
import { AggregatorError, errorMessage } from '../common/errors';
import { PartialFile } from '../common/partial-file';
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

/** One CSV field: quoted when it holds a comma, quote or line break; null is empty. Pure. */
export function csvField(cell: Cell): string {
  if (cell === null) return '';
  const text = String(cell);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The rows as CSV: a header line, then one line per row (numbers in JavaScript's shortest round-trip form). */
export function csvText(rows: readonly DatasetRow[], horizonsMs: readonly number[]): string {
  const columns = datasetColumns(horizonsMs);
  const lines = [csvLine(columns.map((c) => c.name))];
  for (const row of rows) lines.push(csvLine(rowCells(row, columns)));
  return `${lines.join('\n')}\n`;
}

function csvLine(cells: readonly Cell[]): string {
  return cells.map(csvField).join(',');
}

/**
 * A dataset file written while the rows come (the builder's onRow), so that memory holds one row group, not the
 * dataset. The rows go to `<out>.partial`, renamed to `<out>` by finish (common/partial-file.ts): a build that
 * fails or is interrupted leaves no file that looks complete. Synchronous writes.
 */
export interface DatasetSink {
  append(row: DatasetRow): void;
  /** Writes the buffered rows and the footer (Parquet: the metadata), then moves the file into place. */
  finish(metadata: DatasetMetadata): void;
  /** Removes the partial file. Idempotent; a no-op after finish. */
  abort(): void;
}

/** Rows per Parquet row group, and per CSV write. */
export const SINK_BATCH_ROWS = 50_000;

/** A sink of the given format; opens (truncates) the partial file at once, so a bad path fails before a build. */
export function openDatasetSink(
  out: string,
  format: 'parquet' | 'csv',
  horizonsMs: readonly number[],
  batchRows = SINK_BATCH_ROWS,
): DatasetSink {
  try {
    return format === 'csv'
      ? openCsvSink(out, horizonsMs, batchRows)
      : openParquetSink(out, horizonsMs, batchRows);
  } catch (err) {
    throw new DatasetOutputError(out, err);
  }
}

/** The output file cannot be created (a missing directory, no permission). */
export class DatasetOutputError extends AggregatorError {
  constructor(out: string, cause: unknown) {
    super(`cannot write the dataset to ${out}: ${errorMessage(cause)}`, {
      code: 'DATASET_OUTPUT',
      context: { out },
      cause,
    });
    this.name = 'DatasetOutputError';
  }
}

/**
 * hyparquet-writer's ByteWriter, emptied into a file after each row group (ParquetWriter calls flush) and at
 * finish. (The package's own fileWriter does the same but is missing from the types CommonJS resolution sees.)
 */
class FileByteWriter extends ByteWriter {
  constructor(private readonly file: PartialFile) {
    super(1 << 20);
  }

  flush(): void {
    this.file.write(new Uint8Array(this.buffer, 0, this.index));
    this.index = 0;
  }

  override finish(): void {
    this.flush();
  }
}

/** Parquet: snappy, typed columns, a row group per batchRows rows, the metadata as key-value metadata. */
function openParquetSink(out: string, horizonsMs: readonly number[], batchRows: number): DatasetSink {
  const columns = datasetColumns(horizonsMs);
  const schema = schemaFromColumnData({
    columnData: columns.map((c) => ({
      name: c.name,
      data: [],
      type: PARQUET_TYPE[c.type],
      nullable: c.nullable,
    })),
  });
  const file = new PartialFile(out);
  const writer = new ParquetWriter({
    writer: new FileByteWriter(file),
    schema,
    createdBy: 'bitcoin-aggregator dataset build',
  });
  let buffer: Cell[][] = columns.map(() => []);
  const writeBuffered = (): void => {
    if (buffer[0]!.length === 0) return;
    const result = writer.write({
      columnData: columns.map((c, i) => ({ name: c.name, data: buffer[i]! })),
      rowGroupSize: buffer[0]!.length,
    });
    if (result !== undefined) throw new Error('the Parquet file writer is expected to be synchronous');
    buffer = columns.map(() => []);
  };
  return {
    append(row) {
      rowCells(row, columns).forEach((cell, i) => buffer[i]!.push(cell));
      if (buffer[0]!.length >= batchRows) writeBuffered();
    },
    finish(metadata) {
      writeBuffered();
      writer.kvMetadata = metadataEntries(metadata);
      if (writer.finish() !== undefined)
        throw new Error('the Parquet file writer is expected to be synchronous');
      file.commit();
    },
    abort: () => file.abort(),
  };
}

/** CSV: a header line, then one line per row; no metadata. */
function openCsvSink(out: string, horizonsMs: readonly number[], batchRows: number): DatasetSink {
  const columns = datasetColumns(horizonsMs);
  const file = new PartialFile(out);
  let lines = [csvLine(columns.map((c) => c.name))];
  const writeBuffered = (): void => {
    if (lines.length === 0) return;
    file.write(`${lines.join('\n')}\n`);
    lines = [];
  };
  return {
    append(row) {
      lines.push(csvLine(rowCells(row, columns)));
      if (lines.length >= batchRows) writeBuffered();
    },
    finish() {
      writeBuffered();
      file.commit();
    },
    abort: () => file.abort(),
  };
}
