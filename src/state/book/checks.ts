import { toCanonical } from '../../events/canonical';
import type { PriceLevel, SbeMessage } from '../../sbe/messages';
import { BookArgumentError } from '../errors';
import { DEFAULT_BUFFER_MAX_LENGTH, type BookOptions } from './types';

// The checks of the book scripts' arguments, before anything is sent: a value the scripts cannot take is a
// BookArgumentError naming the symbol.

/** Levels in 1..20 and a positive buffer bound; the bound to send. */
export function checkOptions(symbol: string, options: BookOptions): number {
  if (!Number.isInteger(options.levels) || options.levels < 1 || options.levels > 20) {
    throw new BookArgumentError(symbol, `levels must be an integer in 1..20, got ${options.levels}`);
  }
  const bound = options.bufferMaxLength ?? DEFAULT_BUFFER_MAX_LENGTH;
  if (!Number.isInteger(bound) || bound < 1) {
    throw new BookArgumentError(symbol, `bufferMaxLength must be a positive integer, got ${bound}`);
  }
  return bound;
}

/** Refuses a message of another symbol in a symbol's batch. */
export function checkSymbol(symbol: string, message: SbeMessage): void {
  if (message.symbol !== symbol) {
    throw new BookArgumentError(symbol, `a ${message.message} of ${message.symbol} in its batch`);
  }
}

/**
 * A price or quantity as its canonical string; a value without one is refused (BookArgumentError: nothing is sent).
 * Every writer of the book goes through it (the stream's levels here, the REST snapshot in src/reanchor/build.ts).
 */
export function canonicalLevelString(symbol: string, mantissa: bigint, exponent: number): string {
  try {
    return toCanonical(mantissa, exponent);
  } catch (err) {
    throw new BookArgumentError(symbol, (err as Error).message);
  }
}

/** Refuses a level with a negative price or quantity (the scripts only parse unsigned decimals). */
export function checkLevel(symbol: string, level: PriceLevel): void {
  if (level.priceMantissa < 0n || level.qtyMantissa < 0n) {
    throw new BookArgumentError(
      symbol,
      `negative price or quantity (${level.priceMantissa}, ${level.qtyMantissa})`,
    );
  }
}

/** An id or time as the scripts' decimal text; a negative one is refused. */
export function checkId(symbol: string, what: string, value: bigint): string {
  if (value < 0n) throw new BookArgumentError(symbol, `negative ${what} ${value}`);
  return value.toString();
}
