import { AggregatorError } from '../common/errors';
// Typed errors of the SBE codec. A decode error names what failed (code), where (byte offset from the start of the
// buffer handed to the decoder) and which field, so a dead-lettered record can be diagnosed from the log line alone.

export type SbeDecodeErrorCode =
  | 'EMPTY'
  | 'TRUNCATED'
  | 'SCHEMA_MISMATCH'
  | 'UNKNOWN_TEMPLATE'
  | 'BLOCK_LENGTH_TOO_SMALL'
  | 'GROUP_COUNT_TOO_LARGE'
  /** A boolEnum byte other than 0 or 1 (the schema defines no other value). */
  | 'INVALID_ENUM'
  | 'INVALID_SYMBOL'
  | 'TRAILING_BYTES'
  /** Not a fault of the bytes: the reader itself failed (a bug); the record is kept whole. */
  | 'UNEXPECTED';

export class SbeDecodeError extends AggregatorError {
  /**
   * @param offset byte offset (in the buffer given to the decoder) where the problem is
   * @param field  e.g. 'header', 'root', 'trades.groupHeader', 'trades[3].isBuyerMaker', 'symbol'
   * @param message a full sentence naming the field and the offset
   * @param frameEnd where the damaged frame ends, when its lengths could still be read (a bad enum byte, a symbol
   *                 that is not UTF-8): the frames after it can then be decoded
   */
  constructor(
    override readonly code: SbeDecodeErrorCode,
    readonly offset: number,
    readonly field: string,
    message: string,
    readonly frameEnd?: number,
  ) {
    super(message, { code, context: { offset, field } });
    this.name = 'SbeDecodeError';
  }
}

export type SbeEncodeErrorCode =
  | 'UNKNOWN_MESSAGE'
  | 'INVALID_FIELD'
  | 'EXPONENT_OUT_OF_RANGE'
  | 'INT64_OUT_OF_RANGE'
  | 'SYMBOL_TOO_LONG'
  | 'INVALID_SYMBOL'
  | 'GROUP_TOO_LARGE';

/** A message value that has no encoding in schema 1:0 (or that our decoder would refuse). */
export class SbeEncodeError extends AggregatorError {
  constructor(
    override readonly code: SbeEncodeErrorCode,
    readonly field: string,
    readonly problem: string,
  ) {
    super(`cannot encode ${field}: ${problem}`, { code, context: { field } });
    this.name = 'SbeEncodeError';
  }
}

export function isSbeDecodeError(err: unknown): err is SbeDecodeError {
  return err instanceof SbeDecodeError;
}
