// Tick alignment of the feature sidecar. Pure: every tick is a multiple of the interval since the epoch
// (2 s -> :00, :02, :04 wall clock), so every sidecar of a fleet agrees on the tick times without talking,
// and each tick is scheduled from the aligned time, never from when the previous timer fired (no drift).

/** The first tick strictly after nowMs: the smallest multiple of intervalMs greater than nowMs. */
export function nextTickAt(nowMs: number, intervalMs: number): number {
  assertInterval(intervalMs);
  return (Math.floor(nowMs / intervalMs) + 1) * intervalMs;
}

/** The latest tick at or before nowMs. */
export function currentTickAt(nowMs: number, intervalMs: number): number {
  assertInterval(intervalMs);
  return Math.floor(nowMs / intervalMs) * intervalMs;
}

/** Milliseconds to wait from nowMs until tickMs (0 when it is already due). */
export function delayUntil(tickMs: number, nowMs: number): number {
  return Math.max(0, tickMs - nowMs);
}

/** Ticks strictly between two tick times that were not run (a tick that overran its interval skips them). */
export function missedTicks(previousTickMs: number, nextTickMs: number, intervalMs: number): number {
  assertInterval(intervalMs);
  return Math.max(0, Math.round((nextTickMs - previousTickMs) / intervalMs) - 1);
}

function assertInterval(intervalMs: number): void {
  if (!Number.isInteger(intervalMs) || intervalMs <= 0) {
    throw new RangeError(`the tick interval must be a positive integer of ms, got ${intervalMs}`);
  }
}
