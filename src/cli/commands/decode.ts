// `aggregator decode`: SBE frames in (one per line, hex or base64), one JSON object per line out. A bad line is
// reported in place and the rest still decode, so a captured batch can be triaged in one pass.
import { AggregatorError } from '../../common/errors';
import { once } from 'node:events';
import readline from 'node:readline';
import type { Command } from 'commander';
import { SbeDecodeError, decodeErrorToJson, decodeFrame, frameToJson } from '../../sbe';

/** A line that is neither hex nor base64. */
class InputFormatError extends AggregatorError {
  override readonly code = 'BAD_INPUT';
  constructor(message: string) {
    super(message, { code: 'BAD_INPUT' });
  }
}

const HEX = /^(?:0[xX])?((?:[0-9a-fA-F]{2})*)$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Hex wins when a line is both (e.g. "12345678"): hex is what our tools print, and a real frame's base64 almost
 * always has a letter outside a-f. Base64 must be canonical (padding included, unused bits zero).
 */
export function parseFrameText(text: string): Buffer {
  const hex = HEX.exec(text);
  if (hex !== null) return Buffer.from(hex[1] ?? '', 'hex');
  // "0x" announces hex: do not let "0xzz" pass as base64.
  if (/^0[xX]/.test(text))
    throw new InputFormatError('line starts with 0x but is not an even number of hex digits');
  if (BASE64.test(text)) {
    const bytes = Buffer.from(text, 'base64');
    if (bytes.toString('base64') === text) return bytes;
  }
  throw new InputFormatError(
    'line is neither hex (even number of [0-9a-fA-F], optional 0x) nor canonical base64 (A-Z a-z 0-9 + / with = padding)',
  );
}

/** Decodes exactly one frame; bytes after it are an error (one line = one frame). */
function decodeLine(bytes: Buffer): Record<string, unknown> {
  if (bytes.length === 0)
    throw new SbeDecodeError('EMPTY', 0, 'frame', 'empty line: no SBE frame at offset 0');
  const frame = decodeFrame(bytes);
  if (frame.frameLength !== bytes.length) {
    const extra = bytes.length - frame.frameLength;
    throw new SbeDecodeError(
      'TRAILING_BYTES',
      frame.frameLength,
      'frame',
      `${extra} trailing bytes at offset ${frame.frameLength} after a ${frame.frameLength}-byte frame`,
    );
  }
  return frameToJson(frame);
}

function errorJson(err: unknown): Record<string, unknown> {
  if (err instanceof SbeDecodeError) return decodeErrorToJson(err);
  if (err instanceof InputFormatError)
    return { code: err.code, message: err.message, offset: 0, field: 'input' };
  throw err; // a bug, not bad input: let it surface
}

/**
 * Reads frames from `input`, writes one JSON line per non-blank input line to `output` ({"line":N,...} with N the
 * 1-based input line number). Returns how many frame lines were read and how many failed. Does not end `output`.
 */
export async function runDecode(
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
): Promise<{ lines: number; failed: number }> {
  const rl = readline.createInterface({ input, crlfDelay: Infinity, terminal: false });
  let lineNo = 0;
  let lines = 0;
  let failed = 0;
  for await (const raw of rl) {
    lineNo++;
    const text = raw.trim();
    if (text === '') continue;
    lines++;
    let out: Record<string, unknown>;
    try {
      out = { line: lineNo, ...decodeLine(parseFrameText(text)) };
    } catch (err) {
      failed++;
      out = { line: lineNo, error: errorJson(err) };
    }
    if (!output.write(`${JSON.stringify(out)}\n`)) await once(output, 'drain');
  }
  return { lines, failed };
}

export function registerDecode(program: Command): void {
  program
    .command('decode')
    .description('decode SBE frames, one per line on stdin, hex or base64')
    .action(async () => {
      const { failed } = await runDecode(process.stdin, process.stdout);
      if (failed > 0) process.exitCode = 1;
    });
}
