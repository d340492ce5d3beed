// Decoded Binance spot SBE stream messages (schema id 1, version 0), mirroring the wire exactly.
// Prices and quantities stay as int64 mantissas with the message's exponent: value = mantissa x 10^exponent.
// Timestamps are microseconds since the epoch; ids are int64. Nothing here is a binary float.

export const SCHEMA_ID = 1;
export const SCHEMA_VERSION = 0;
export const MESSAGE_HEADER_LENGTH = 8;

export const TemplateId = {
  TradesStreamEvent: 10000,
  BestBidAskStreamEvent: 10001,
  DepthSnapshotStreamEvent: 10002,
  DepthDiffStreamEvent: 10003,
} as const;
export type TemplateId = (typeof TemplateId)[keyof typeof TemplateId];

export interface MessageHeader {
  readonly blockLength: number;
  readonly templateId: number;
  readonly schemaId: number;
  readonly version: number;
}

export interface TradeEntry {
  readonly id: bigint;
  readonly priceMantissa: bigint;
  readonly qtyMantissa: bigint;
  readonly isBuyerMaker: boolean;
  /** A constant in the schema (always true); carried for completeness, it takes no bytes on the wire. */
  readonly isBestMatch: true;
}

export interface PriceLevel {
  readonly priceMantissa: bigint;
  readonly qtyMantissa: bigint;
}

/** What every message of the schema carries: its event time, the exponents of its mantissas, its symbol. */
interface StreamEventCommon {
  readonly eventTime: bigint;
  readonly priceExponent: number;
  readonly qtyExponent: number;
  readonly symbol: string;
}

export interface TradesStreamEvent extends StreamEventCommon {
  readonly message: 'TradesStreamEvent';
  readonly transactTime: bigint;
  readonly trades: readonly TradeEntry[];
}

export interface BestBidAskStreamEvent extends StreamEventCommon {
  readonly message: 'BestBidAskStreamEvent';
  readonly bookUpdateId: bigint;
  readonly bidPriceMantissa: bigint;
  readonly bidQtyMantissa: bigint;
  readonly askPriceMantissa: bigint;
  readonly askQtyMantissa: bigint;
}

/** Both depth messages: the two sides' levels. */
interface DepthLevels extends StreamEventCommon {
  readonly bids: readonly PriceLevel[];
  readonly asks: readonly PriceLevel[];
}

export interface DepthSnapshotStreamEvent extends DepthLevels {
  readonly message: 'DepthSnapshotStreamEvent';
  readonly bookUpdateId: bigint;
}

export interface DepthDiffStreamEvent extends DepthLevels {
  readonly message: 'DepthDiffStreamEvent';
  readonly firstBookUpdateId: bigint;
  readonly lastBookUpdateId: bigint;
}

export type SbeMessage =
  TradesStreamEvent | BestBidAskStreamEvent | DepthSnapshotStreamEvent | DepthDiffStreamEvent;

/** A decoded frame: the header as read from the wire, the message, and how many bytes the frame took. */
export interface DecodedFrame {
  readonly header: MessageHeader;
  readonly message: SbeMessage;
  readonly frameLength: number;
}
