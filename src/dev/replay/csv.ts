import { AggregatorError } from '../../common/errors';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { parseDecimal } from '../../sbe/decimal';
import type { TradesStreamEvent } from '../../sbe/messages';

// Trades CSV -> TradesStreamEvent (one trade per message), streamed line by line so large files work.
//
// Two formats, detected from the first line:
//   binance: id,price,qty,quote_qty,time,is_buyer_maker,is_best_match  (Binance's downloadable files have no header:
//            7 columns and a numeric first field; time in ms (13 digits) or us (16 digits); no symbol column)
//   tardis:  exchange,symbol,timestamp,local_timestamp,id,side,price,amount  (header required; timestamp in us;
//            side is the taker side, so 'sell' means the buyer was the maker)
// Prices and quantities are parsed exactly (parseDecimal); a value that needs more digits than the exponent allows
// is an error, never rounded.

export type TradesCsvFormat = 'binance' | 'tardis';

export interface TradesCsvOptions {
  /** 'auto' (default) detects the format from the first line. */
  readonly format?: TradesCsvFormat | 'auto';
  /** Required for the binance format (it has no symbol column); ignored for tardis. */
  readonly symbol?: string | undefined;
  readonly priceExponent?: number;
  readonly qtyExponent?: number;
  /** Name used in error messages (default: the file's base name). */
  readonly fileLabel?: string;
}

/** A row (or the header) that cannot be turned into a trade; the message names file, line, column and value. */
export class CsvParseError extends AggregatorError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: string,
    readonly value: string,
    readonly problem: string,
  ) {
    super(
      column === ''
        ? `${file} line ${line}: ${problem}`
        : `${file} line ${line}, column ${column}: ${JSON.stringify(value)} ${problem}`,
      { code: 'CSV_PARSE', context: { file, line, column } },
    );
    this.name = 'CsvParseError';
  }
}

export const BINANCE_COLUMNS = [
  'id',
  'price',
  'qty',
  'quote_qty',
  'time',
  'is_buyer_maker',
  'is_best_match',
] as const;
export const TARDIS_COLUMNS = [
  'exchange',
  'symbol',
  'timestamp',
  'local_timestamp',
  'id',
  'side',
  'price',
  'amount',
] as const;

export interface DetectedLayout {
  readonly format: TradesCsvFormat;
  /** True when the first line is a header (to be skipped). */
  readonly hasHeader: boolean;
  /** Column name -> index (from the header, else the canonical order). */
  readonly columns: ReadonlyMap<string, number>;
}

const DIGITS = /^\d+$/;
const SYMBOL = /^[A-Za-z0-9._-]{1,64}$/;

function canonical(names: readonly string[]): Map<string, number> {
  return new Map(names.map((n, i) => [n, i]));
}

/** Detects the format from the first line; `forced` skips detection but still recognises a header line. */
export function detectLayout(firstLine: string, file: string, forced?: TradesCsvFormat): DetectedLayout {
  const cells = firstLine.split(',').map((c) => c.trim());
  const lower = cells.map((c) => c.toLowerCase());
  const isTardisHeader = TARDIS_COLUMNS.every((c) => lower.includes(c));
  const isBinanceHeader =
    lower.length === BINANCE_COLUMNS.length && lower[0] === 'id' && lower.includes('price');
  const headerColumns = new Map(lower.map((c, i) => [c, i]));
  if (forced === 'tardis' || (forced === undefined && isTardisHeader)) {
    if (!isTardisHeader) {
      throw new CsvParseError(
        file,
        1,
        '',
        firstLine,
        `expected the Tardis header ${TARDIS_COLUMNS.join(',')}`,
      );
    }
    return { format: 'tardis', hasHeader: true, columns: headerColumns };
  }
  if (isBinanceHeader) return { format: 'binance', hasHeader: true, columns: canonical(BINANCE_COLUMNS) };
  if (forced === 'binance' || (cells.length === BINANCE_COLUMNS.length && DIGITS.test(cells[0] ?? ''))) {
    return { format: 'binance', hasHeader: false, columns: canonical(BINANCE_COLUMNS) };
  }
  throw new CsvParseError(
    file,
    1,
    '',
    firstLine,
    `unrecognised trades CSV: expected a Tardis header (${TARDIS_COLUMNS.join(',')}) or Binance rows ` +
      `(${BINANCE_COLUMNS.join(',')}, 7 columns, numeric id)`,
  );
}

interface RowContext {
  readonly file: string;
  readonly line: number;
  readonly cells: readonly string[];
  readonly columns: ReadonlyMap<string, number>;
}

function cell(ctx: RowContext, column: string): string {
  const i = ctx.columns.get(column);
  const value = i === undefined ? undefined : ctx.cells[i];
  if (value === undefined) {
    throw new CsvParseError(
      ctx.file,
      ctx.line,
      column,
      '',
      `is missing (the row has ${ctx.cells.length} columns)`,
    );
  }
  return value.trim();
}

function positiveDecimal(ctx: RowContext, column: string, exponent: number): bigint {
  const text = cell(ctx, column);
  let mantissa: bigint;
  try {
    mantissa = parseDecimal(text, exponent);
  } catch (err) {
    const reason = (err as { reason?: unknown }).reason;
    if (typeof reason !== 'string' || reason.startsWith('not a plain decimal')) {
      throw new CsvParseError(ctx.file, ctx.line, column, text, 'is not a decimal');
    }
    if (reason.startsWith('exponent notation')) {
      throw new CsvParseError(ctx.file, ctx.line, column, text, 'is not a decimal (exponent notation)');
    }
    throw new CsvParseError(
      ctx.file,
      ctx.line,
      column,
      text,
      `is not exact at exponent ${exponent}: ${reason}`,
    );
  }
  if (mantissa <= 0n) throw new CsvParseError(ctx.file, ctx.line, column, text, 'must be positive');
  return mantissa;
}

function unsigned(ctx: RowContext, column: string): bigint {
  const text = cell(ctx, column);
  if (!DIGITS.test(text))
    throw new CsvParseError(ctx.file, ctx.line, column, text, 'is not a non-negative integer');
  const value = BigInt(text);
  if (value >= 1n << 63n) throw new CsvParseError(ctx.file, ctx.line, column, text, 'overflows int64');
  return value;
}

/** ms (< 10^14, i.e. up to 13 digits for any date before year 5000) or us (16 digits) -> us. */
function binanceTimeUs(ctx: RowContext): bigint {
  const value = unsigned(ctx, 'time');
  return value < 100_000_000_000_000n ? value * 1000n : value;
}

function bool(ctx: RowContext, column: string): boolean {
  const text = cell(ctx, column);
  const lower = text.toLowerCase();
  if (lower === 'true' || lower === '1') return true;
  if (lower === 'false' || lower === '0') return false;
  throw new CsvParseError(ctx.file, ctx.line, column, text, 'is not a boolean (true/false)');
}

function tradeEvent(
  symbol: string,
  timeUs: bigint,
  id: bigint,
  priceMantissa: bigint,
  qtyMantissa: bigint,
  isBuyerMaker: boolean,
  priceExponent: number,
  qtyExponent: number,
): TradesStreamEvent {
  return {
    message: 'TradesStreamEvent',
    eventTime: timeUs,
    transactTime: timeUs,
    priceExponent,
    qtyExponent,
    trades: [{ id, priceMantissa, qtyMantissa, isBuyerMaker, isBestMatch: true }],
    symbol,
  };
}

export interface RowParser {
  readonly layout: DetectedLayout;
  /** Parses one data line (1-based `line` for messages); blank lines return undefined. */
  parse(text: string, line: number): TradesStreamEvent | undefined;
}

/** Builds the parser for a file once its first line is known. Pure: no I/O. */
export function rowParser(firstLine: string, opts: TradesCsvOptions & { fileLabel: string }): RowParser {
  const file = opts.fileLabel;
  const priceExponent = opts.priceExponent ?? -8;
  const qtyExponent = opts.qtyExponent ?? -8;
  const forced = opts.format === undefined || opts.format === 'auto' ? undefined : opts.format;
  const layout = detectLayout(firstLine, file, forced);
  const width = layout.format === 'binance' ? BINANCE_COLUMNS.length : layout.columns.size;
  /** A data line's cells (undefined for a blank line); a line of another width is refused. */
  const rowOf = (text: string, line: number): RowContext | undefined => {
    if (text.trim() === '') return undefined;
    const ctx: RowContext = { file, line, cells: text.split(','), columns: layout.columns };
    if (ctx.cells.length !== width) {
      throw new CsvParseError(file, line, '', text, `expected ${width} columns, got ${ctx.cells.length}`);
    }
    return ctx;
  };

  if (layout.format === 'binance') {
    const symbol = opts.symbol;
    if (symbol === undefined || !SYMBOL.test(symbol)) {
      throw new CsvParseError(
        file,
        1,
        '',
        '',
        `the Binance trades format has no symbol column: give a symbol (got ${JSON.stringify(symbol ?? '')})`,
      );
    }
    return {
      layout,
      parse(text, line) {
        const ctx = rowOf(text, line);
        if (ctx === undefined) return undefined;
        return tradeEvent(
          symbol.toUpperCase(),
          binanceTimeUs(ctx),
          unsigned(ctx, 'id'),
          positiveDecimal(ctx, 'price', priceExponent),
          positiveDecimal(ctx, 'qty', qtyExponent),
          bool(ctx, 'is_buyer_maker'),
          priceExponent,
          qtyExponent,
        );
      },
    };
  }

  return {
    layout,
    parse(text, line) {
      const ctx = rowOf(text, line);
      if (ctx === undefined) return undefined;
      const symbol = cell(ctx, 'symbol');
      if (!SYMBOL.test(symbol)) throw new CsvParseError(file, line, 'symbol', symbol, 'is not a symbol');
      const side = cell(ctx, 'side').toLowerCase();
      if (side !== 'buy' && side !== 'sell') {
        throw new CsvParseError(file, line, 'side', side, 'is not a taker side (buy/sell)');
      }
      return tradeEvent(
        symbol.toUpperCase(),
        unsigned(ctx, 'timestamp'),
        unsigned(ctx, 'id'),
        positiveDecimal(ctx, 'price', priceExponent),
        positiveDecimal(ctx, 'amount', qtyExponent),
        side === 'sell',
        priceExponent,
        qtyExponent,
      );
    },
  };
}

/** Parses trades from any line source (an array in tests, readline for files). */
export async function* parseTradesLines(
  lines: AsyncIterable<string> | Iterable<string>,
  opts: TradesCsvOptions & { fileLabel: string },
): AsyncGenerator<TradesStreamEvent, void, undefined> {
  let parser: RowParser | undefined;
  let line = 0;
  for await (const text of lines) {
    line++;
    if (parser === undefined) {
      if (text.trim() === '') continue;
      // A UTF-8 BOM would otherwise stick to the first column's name.
      const first = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
      parser = rowParser(first, opts);
      if (parser.layout.hasHeader) continue;
      const ev = parser.parse(first, line);
      if (ev !== undefined) yield ev;
      continue;
    }
    const ev = parser.parse(text, line);
    if (ev !== undefined) yield ev;
  }
}

/** Streams the trades of a CSV file, one TradesStreamEvent per row. Throws CsvParseError at the first bad row. */
export async function* readTradesCsv(
  file: string,
  opts: TradesCsvOptions = {},
): AsyncGenerator<TradesStreamEvent, void, undefined> {
  const input = fs.createReadStream(file, { encoding: 'utf8' });
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  try {
    yield* parseTradesLines(lines, { ...opts, fileLabel: opts.fileLabel ?? path.basename(file) });
  } finally {
    lines.close();
    input.destroy();
  }
}
