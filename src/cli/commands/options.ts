import { STREAM_KINDS, type StreamKind } from '../../config/config';

// Option values the commands share, validated with their exact messages.

/** A --stream value: one of STREAM_KINDS. */
export function parseStreamKind(value: string): StreamKind {
  if (!(STREAM_KINDS as readonly string[]).includes(value)) {
    throw new Error(`--stream must be one of ${STREAM_KINDS.join(', ')}, got "${value}"`);
  }
  return value as StreamKind;
}

/** A positive integer option (name: the flag, for the message). */
export function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(text)}`);
  }
  return value;
}
