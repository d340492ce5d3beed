import type { FeatureVector } from '../features/types';

// The sidecar's degraded mode (pure). When the inputs are stale or missing, computeFeatures still returns a
// vector but with a low `completeness` (share of the inputs present and fresh, 0..1). Rules, per symbol:
//
// 1. fresh:   completeness >= minCompleteness (a vector without a numeric completeness counts as complete)
//             -> serve the computed vector; it becomes the symbol's last good vector.
// 2. reserved-last-good: completeness < minCompleteness and a last good vector exists whose feature_ts is at
//             most maxReserveAgeMs before the tick -> serve the last good vector's features with
//               feature_ts   = the tick,
//               data_age_ms  = lastGood.data_age_ms + (tick - lastGood.feature_ts)   (its inputs aged that much),
//               completeness = min(lastGood.completeness, minCompleteness) / 2      (always below the threshold,
//                              so a reader applying the same threshold sees the vector is degraded).
// 3. low-completeness: completeness < minCompleteness and no usable last good vector
//             -> serve the computed vector as it is (its completeness and data_age_ms tell the truth).
//
// High data_age_ms alone does not trigger re-serving: a vector computed from old inputs is as informative as
// an older vector computed from the same inputs; compute.ts lowers completeness for stale inputs.

export interface DegradedPolicy {
  readonly minCompleteness: number;
  readonly maxReserveAgeMs: number;
}

export const DEFAULT_DEGRADED_POLICY: DegradedPolicy = { minCompleteness: 0.5, maxReserveAgeMs: 10_000 };

export type ServeMode = 'fresh' | 'reserved-last-good' | 'low-completeness';

export interface ServedVector {
  readonly mode: ServeMode;
  readonly vector: FeatureVector;
  /** The computed vector's completeness (1 when it had none). */
  readonly computedCompleteness: number;
}

export function numberField(vector: FeatureVector, field: string): number | undefined {
  const value = vector[field];
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** Picks what to serve at tickMs; feature_ts of the result is always tickMs. */
export function chooseVector(
  computed: FeatureVector,
  lastGood: FeatureVector | undefined,
  tickMs: number,
  policy: DegradedPolicy,
): ServedVector {
  const computedCompleteness = numberField(computed, 'completeness') ?? 1;
  if (computedCompleteness >= policy.minCompleteness) {
    return { mode: 'fresh', vector: { ...computed, feature_ts: tickMs }, computedCompleteness };
  }
  const goodTs = lastGood ? numberField(lastGood, 'feature_ts') : undefined;
  if (lastGood === undefined || goodTs === undefined || tickMs - goodTs > policy.maxReserveAgeMs) {
    return { mode: 'low-completeness', vector: { ...computed, feature_ts: tickMs }, computedCompleteness };
  }
  const goodAge = Math.max(0, numberField(lastGood, 'data_age_ms') ?? 0);
  const goodCompleteness = numberField(lastGood, 'completeness') ?? 1;
  return {
    mode: 'reserved-last-good',
    vector: {
      ...lastGood,
      feature_ts: tickMs,
      data_age_ms: goodAge + (tickMs - goodTs),
      completeness: Math.min(goodCompleteness, policy.minCompleteness) / 2,
    },
    computedCompleteness,
  };
}
