// The export format of served vectors (`aggregator features export`, read back by `dataset verify --served`):
// JSON lines, each {"symbol": S, "id": the feat:<S>:history entry id, "fields": {the entry's fields, strings}}.
// Pure.

import { AggregatorError } from '../common/errors';
import type { ServedVector } from './verify';

/** A line of a served-vectors file that is not one. */
export class ServedLinesError extends AggregatorError {
  constructor(file: string, line: number, what: string) {
    super(`${file} line ${line}: ${what}`, { code: 'SERVED_LINES', context: { file, line } });
    this.name = 'ServedLinesError';
  }
}

/** A feat:<S>:history entry (XRANGE's id and flat field/value list) as a served vector. */
export function servedVectorOf(id: string, flat: readonly string[]): ServedVector {
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] ?? ''] = flat[i + 1] ?? '';
  return { id, fields };
}

/** One served vector as a line (no newline). */
export function formatServedLine(symbol: string, vector: ServedVector): string {
  return JSON.stringify({ symbol, id: vector.id, fields: vector.fields });
}

/**
 * The served vectors of a file, per symbol in file order. Blank lines are skipped; a missing id is taken as
 * `<feature_ts>-0`; field values are kept as strings (numbers in hand-written files are converted).
 */
export function parseServedLines(text: string, file: string): Map<string, ServedVector[]> {
  const out = new Map<string, ServedVector[]>();
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new ServedLinesError(file, i + 1, 'not JSON');
    }
    const o = parsed as { symbol?: unknown; id?: unknown; fields?: unknown };
    if (typeof o.symbol !== 'string' || typeof o.fields !== 'object' || o.fields === null)
      throw new ServedLinesError(file, i + 1, 'want {"symbol": ..., "id": ..., "fields": {...}}');
    const fields = Object.fromEntries(Object.entries(o.fields).map(([k, v]) => [k, String(v)]));
    const id = typeof o.id === 'string' ? o.id : `${fields['feature_ts'] ?? i}-0`;
    const list = out.get(o.symbol) ?? [];
    list.push({ id, fields });
    out.set(o.symbol, list);
  });
  return out;
}
