import { currentTickAt, nextTickAt } from '../sidecar/schedule';

// When the dataset builder computes a row and which states it reads (issue 16). Pure.
//
// Ticks are aligned like the sidecar's (src/sidecar/schedule.ts): multiples of the interval since the epoch.
// Point in time: the row of tick t is computed from the state holding exactly the events with event time
// <= t - latency on each stream, with computeFeatures(snapshot, t): nothing later leaks into a row. Labels read
// the state at t (the base of the returns) and at t + H for each horizon H, with no latency (what the market was).

/** The ticks of [fromMs, toMs], both ends included when aligned, ascending. */
export function tickTimes(fromMs: number, toMs: number, intervalMs: number): number[] {
  const first = currentTickAt(fromMs, intervalMs) === fromMs ? fromMs : nextTickAt(fromMs, intervalMs);
  const out: number[] = [];
  for (let t = first; t <= toMs; t += intervalMs) out.push(t);
  return out;
}

/** The state a tick's features are computed from: events with event time <= this (ms). */
export function featureCutMs(tickMs: number, latencyMs: number): number {
  return tickMs - latencyMs;
}

/**
 * Every time (ms) at which the builder reads the state, ascending and unique: each tick's feature cut and, when
 * there are horizons, the tick itself and tick + H.
 */
export function readPoints(
  ticks: readonly number[],
  latencyMs: number,
  horizonsMs: readonly number[],
): number[] {
  const points = new Set<number>();
  for (const t of ticks) {
    points.add(featureCutMs(t, latencyMs));
    if (horizonsMs.length === 0) continue;
    points.add(t);
    for (const h of horizonsMs) points.add(t + h);
  }
  return [...points].sort((a, b) => a - b);
}

const DURATION = /^(\d+)(ms|s|m|h)$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "2s", "500ms", "1m", "1h" as milliseconds; throws a RangeError naming the option otherwise. */
export function parseDurationMs(text: string, option: string): number {
  const m = DURATION.exec(text.trim());
  if (m === null || m[1] === undefined || m[2] === undefined) {
    throw new RangeError(`${option}: expected a duration such as 500ms, 2s, 1m or 1h, got "${text}"`);
  }
  return Number(m[1]) * (UNIT_MS[m[2]] ?? 1);
}

/** A horizon as a column-name suffix: 10000 -> "10s", 1500 -> "1500ms". */
export function horizonName(horizonMs: number): string {
  return horizonMs % 1000 === 0 ? `${horizonMs / 1000}s` : `${horizonMs}ms`;
}
