// Training/serving parity, the comparison: a served vector (feat:<S>:history entry, fields as strings) against
// the vector recomputed offline from the same inputs. Pure; the replay that recomputes the vectors and the
// `aggregator features verify` command are src/app/features-verify.ts and src/cli/commands/features-verify.ts.

import type { FeatureVector } from './types';
import { FEATURE_NAMES, WATERMARK_FIELDS } from './compute';

/** One served vector: its stream entry id and fields (strings, as stored). */
export interface ServedVector {
  readonly id: string;
  readonly fields: Readonly<Record<string, string>>;
}

export interface FieldMismatch {
  readonly field: string;
  readonly served: string | undefined;
  readonly recomputed: string;
}

export interface VectorResult {
  readonly id: string;
  readonly ok: boolean;
  readonly mismatches: readonly FieldMismatch[];
}

export interface VerifySummary {
  readonly vectors: number;
  readonly mismatched: number;
  readonly results: readonly VectorResult[];
}

/** Relative tolerance of numeric fields. */
export const RELATIVE_TOLERANCE = 1e-9;

function numbersAgree(a: number, b: number): boolean {
  if (a === b) return true;
  return Math.abs(a - b) <= RELATIVE_TOLERANCE * Math.max(Math.abs(a), Math.abs(b));
}

/**
 * Field-by-field comparison of a served vector (strings) with a recomputed one. Watermarks and schema_version
 * must be equal exactly, other numbers within RELATIVE_TOLERANCE. Fields served but unknown are ignored.
 */
export function compareVectors(
  served: Readonly<Record<string, string>>,
  recomputed: FeatureVector,
): FieldMismatch[] {
  const mismatches: FieldMismatch[] = [];
  for (const [field, value] of Object.entries(recomputed)) {
    const s = served[field];
    let ok: boolean;
    if (typeof value === 'string' || field === 'schema_version') ok = s === String(value);
    else ok = s !== undefined && s.trim() !== '' && numbersAgree(Number(s), value);
    if (!ok) mismatches.push({ field, served: s, recomputed: String(value) });
  }
  return mismatches;
}

export function formatResult(result: VectorResult): string {
  if (result.ok) return `${result.id} ok`;
  const parts = result.mismatches.map(
    (m) => `${m.field} served=${m.served ?? '(missing)'} recomputed=${m.recomputed}`,
  );
  return `${result.id} MISMATCH ${parts.join(' ')}`;
}

/** The feature names the verifier compares (FEATURE_NAMES and the watermarks). */
export const VERIFIED_FIELDS: readonly string[] = [...FEATURE_NAMES, ...WATERMARK_FIELDS];
