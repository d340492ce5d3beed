// Public API of the SBE codec (Binance spot stream schema 1:0).
export * from './messages';
export { DecimalParseError, formatDecimal, parseDecimal } from './decimal';
export { SbeDecodeError, SbeEncodeError, isSbeDecodeError } from './errors';
export type { SbeDecodeErrorCode, SbeEncodeErrorCode } from './errors';
export {
  LAYOUTS,
  MAX_LEVELS_PER_SIDE,
  MAX_SYMBOL_BYTES,
  MAX_TRADES_PER_EVENT,
  decodeFrame,
  decodeFrames,
  fieldOffset,
  walkFrames,
} from './decoder';
export type { FieldLayout, FrameWalkItem, GroupLayout, MessageLayout } from './decoder';
export { encodeFrames, encodeMessage } from './encoder';
export { bytesToJson, decodeErrorToJson, frameToJson } from './json';
