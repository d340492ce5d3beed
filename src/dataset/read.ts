import fs from 'node:fs';
// hyparquet (Hyperparam, MIT): the reader of the same author as hyparquet-writer (output.ts), pure JavaScript,
// no native code. ESM-only: Node 24 loads it with require().
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { FEATURE_NAMES, WATERMARK_FIELDS } from '../features/compute';
import type { FeatureVector } from '../features/types';

// Reads a dataset file back (issue 16, `aggregator dataset verify`): Parquet (output.ts openDatasetSink) or CSV
// (output.ts csvText), the format told by the file's magic bytes. A row's vector holds FEATURE_NAMES as numbers
// and the watermarks as strings, as computeFeatures returns them; labels are not read.

export interface DatasetFileRow {
  readonly symbol: string;
  readonly tickMs: number;
  readonly vector: FeatureVector;
}

export interface DatasetFile {
  readonly format: 'parquet' | 'csv';
  readonly rows: readonly DatasetFileRow[];
  /** The Parquet file's input_range metadata (undefined for CSV). */
  readonly inputRange: Readonly<Record<string, unknown>> | undefined;
}

function toVector(get: (column: string) => unknown, where: string): FeatureVector {
  const vector: Record<string, string | number> = {};
  for (const name of FEATURE_NAMES) {
    const raw = get(name);
    const value = typeof raw === 'bigint' ? Number(raw) : typeof raw === 'string' ? Number(raw) : raw;
    if (typeof value !== 'number' || (typeof raw === 'string' && raw.trim() === ''))
      throw new Error(`${where}: column ${name} is missing or not a number`);
    vector[name] = value;
  }
  for (const name of WATERMARK_FIELDS) {
    const raw = get(name);
    if (raw === undefined) throw new Error(`${where}: column ${name} is missing`);
    if (raw !== null && typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'bigint')
      throw new Error(`${where}: column ${name} is not a string`);
    vector[name] = raw === null ? '' : String(raw);
  }
  return vector;
}

/** Splits CSV text (RFC 4180 quoting, as output.ts csvField writes it) into records of fields. Pure. */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      record.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      record.push(field);
      records.push(record);
      record = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || record.length > 0) {
    record.push(field);
    records.push(record);
  }
  return records;
}

/** Reads a dataset file written by `aggregator dataset build`. */
export async function readDatasetFile(file: string): Promise<DatasetFile> {
  const bytes = fs.readFileSync(file);
  const isParquet = bytes.length >= 8 && bytes.subarray(0, 4).toString('latin1') === 'PAR1';
  if (isParquet) {
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const metadata = parquetMetadata(buffer);
    const range = metadata.key_value_metadata?.find((kv) => kv.key === 'input_range')?.value;
    const objects = await parquetReadObjects({ file: buffer });
    const rows = objects.map((o, i) => ({
      symbol: String(o['symbol']),
      tickMs: Number(o['tick_ms']),
      vector: toVector((c) => o[c], `${file} row ${i + 1}`),
    }));
    return {
      format: 'parquet',
      rows,
      inputRange: range === undefined ? undefined : (JSON.parse(range) as Record<string, unknown>),
    };
  }
  const [header, ...records] = parseCsv(bytes.toString('utf8'));
  if (header === undefined || !header.includes('symbol') || !header.includes('tick_ms'))
    throw new Error(`${file} is neither Parquet nor a dataset CSV (no symbol and tick_ms header)`);
  const index = new Map(header.map((name, i) => [name, i]));
  const rows = records.map((r, i) => {
    const get = (c: string): string | undefined => {
      const at = index.get(c);
      return at === undefined ? undefined : r[at];
    };
    return {
      symbol: get('symbol') ?? '',
      tickMs: Number(get('tick_ms')),
      vector: toVector(get, `${file} line ${i + 2}`),
    };
  });
  return { format: 'csv', rows, inputRange: undefined };
}
