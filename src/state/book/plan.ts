import { levelCount } from '../../sbe/decoder';
import type { DepthDiffStreamEvent, DepthSnapshotStreamEvent, SbeMessage } from '../../sbe/messages';
import { checkSymbol } from './checks';

// Bounded calls: how one symbol's depth batch is split into calls of apply-depth-batch-12.lua (pure).

function compareDiffs(a: DepthDiffStreamEvent, b: DepthDiffStreamEvent): number {
  if (a.lastBookUpdateId !== b.lastBookUpdateId) return a.lastBookUpdateId < b.lastBookUpdateId ? -1 : 1;
  if (a.firstBookUpdateId !== b.firstBookUpdateId) return a.firstBookUpdateId < b.firstBookUpdateId ? -1 : 1;
  return 0;
}

/** Most diffs one apply-depth-batch call carries (measured: docs/architecture.md, "Bounded script calls"). */
export const MAX_DIFFS_PER_CALL = 200;
/** Most levels (summed over a call's diffs and its depth20 snapshot) one call carries. */
export const MAX_LEVELS_PER_CALL = 1200;

export interface DepthCallLimits {
  readonly maxDiffs: number;
  readonly maxLevels: number;
}

export const DEFAULT_DEPTH_CALL_LIMITS: DepthCallLimits = {
  maxDiffs: MAX_DIFFS_PER_CALL,
  maxLevels: MAX_LEVELS_PER_CALL,
};

/**
 * Whether a call holding `diffs` diffs and `levels` levels must be cut before one more item of `size` levels: it
 * is full, or the item would carry it past the levels bound. An empty call takes any item (a diff is applied whole).
 * The one rule of every bounded depth call (planDepthCalls here, the re-anchor replay in src/reanchor/build.ts).
 */
export function callIsFull(diffs: number, levels: number, size: number, limits: DepthCallLimits): boolean {
  return diffs > 0 && (diffs >= limits.maxDiffs || levels + size > limits.maxLevels);
}

/** One call's share of a symbol's depth batch (see planDepthCalls). */
export interface DepthChunk {
  /** Sorted by u strictly ascending (duplicates of a u dropped). */
  readonly diffs: readonly DepthDiffStreamEvent[];
  /** The batch's newest depth20 snapshot, carried by the last chunk only. */
  readonly snapshot: DepthSnapshotStreamEvent | undefined;
  /** The batch's newest event time (diffs and depth20 snapshots), carried by its last chunk only. */
  readonly eventTimeUs: bigint | undefined;
  /**
   * An intermediate chunk of a batch split in several calls: the script applies or buffers its diffs and writes the
   * book state; ob:<S>, the crossed check and the trade windows are the last chunk's (once per batch, as unsplit).
   */
  readonly part: boolean;
  /** Each diff's U <= the previous u + 1: the chunk can be sent as its net effect. */
  readonly chained: boolean;
}

/**
 * Splits one symbol's depth messages (depth20 snapshots and diffs; other kinds are skipped) into the chunks of
 * bounded calls: diffs sorted by u ascending with repeated u dropped, cut after at most limits.maxDiffs diffs or
 * before the levels would exceed limits.maxLevels (a single larger diff is a chunk of its own: a diff is applied
 * whole). The last chunk carries the newest depth20 snapshot and the batch's newest event time and does what is
 * done once per batch (ob:<S>, the crossed check, the trade windows); the others are parts. No messages give one
 * empty chunk (it refreshes the windows with no time, as an empty batch always did). Pure.
 */
export function planDepthCalls(
  symbol: string,
  messages: readonly SbeMessage[],
  limits: DepthCallLimits = DEFAULT_DEPTH_CALL_LIMITS,
): DepthChunk[] {
  let newestSnapshot: DepthSnapshotStreamEvent | undefined;
  let snapshotsTime: bigint | undefined;
  const all: DepthDiffStreamEvent[] = [];
  for (const message of messages) {
    if (message.message !== 'DepthSnapshotStreamEvent' && message.message !== 'DepthDiffStreamEvent')
      continue;
    checkSymbol(symbol, message);
    if (message.message === 'DepthDiffStreamEvent') {
      all.push(message);
    } else {
      if (snapshotsTime === undefined || message.eventTime > snapshotsTime) snapshotsTime = message.eventTime;
      if (newestSnapshot === undefined || message.bookUpdateId > newestSnapshot.bookUpdateId) {
        newestSnapshot = message;
      }
    }
  }
  all.sort(compareDiffs);
  const runs: Array<{ diffs: DepthDiffStreamEvent[]; chained: boolean }> = [];
  let current: DepthDiffStreamEvent[] = [];
  let levels = 0;
  let chained = true;
  let batchTime = snapshotsTime;
  const cut = () => {
    runs.push({ diffs: current, chained });
    current = [];
    levels = 0;
    chained = true;
  };
  let previous: DepthDiffStreamEvent | undefined;
  for (const diff of all) {
    if (previous !== undefined && diff.lastBookUpdateId === previous.lastBookUpdateId) continue;
    const size = levelCount(diff);
    if (callIsFull(current.length, levels, size, limits)) cut();
    const last = current[current.length - 1];
    if (last !== undefined && diff.firstBookUpdateId > last.lastBookUpdateId + 1n) chained = false;
    current.push(diff);
    levels += size;
    if (batchTime === undefined || diff.eventTime > batchTime) batchTime = diff.eventTime;
    previous = diff;
  }
  if (newestSnapshot !== undefined) {
    const size = levelCount(newestSnapshot);
    if (current.length > 0 && levels + size > limits.maxLevels) cut();
  }
  cut();
  return runs.map((run, i) => {
    const last = i === runs.length - 1;
    return {
      diffs: run.diffs,
      chained: run.chained,
      snapshot: last ? newestSnapshot : undefined,
      eventTimeUs: last ? batchTime : undefined,
      part: !last,
    };
  });
}
