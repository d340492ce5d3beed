import type { SbeMessage } from '../sbe/messages';
import { MarketSimulator } from './simulator';
import type { SimulatorOptions } from './simulator';

// Keeping a simulator's event time on the wall clock, shared by the replay (src/cli/dev/replay.ts) and the
// soak (src/dev/bench/soak.ts). The simulator's time is simulated: how fast it advances against the clock depends on
// how many events per simulated second it generates (its natural rate) and how fast they are published. Processors
// dead-letter events dated more than processing.max_future_skew_ms ahead of their clock (FUTURE_TIME) and the
// sidecar judges freshness by its own clock, so event time must not run ahead, nor lag far behind.

/** A simulator's setup without its start time (which shifts event times but changes nothing else). */
export type SimulatorActivity = Omit<SimulatorOptions, 'startTimeUs'>;

/** Events per simulated second of a simulator configuration, per stream. */
export interface NaturalRates {
  readonly trade: number;
  readonly bestbidask: number;
  readonly depth: number;
  readonly total: number;
}

/** Events per simulated second of the simulator at these settings, measured over 60 simulated seconds. */
export function measureNaturalRates(activity: SimulatorActivity): NaturalRates {
  const sim = new MarketSimulator({ ...activity, startTimeUs: 0n });
  const counts = { trade: 0, bestbidask: 0, depth: 0 };
  const seconds = 60;
  while (sim.currentTimeUs < BigInt(seconds * 1_000_000)) counts[sim.next().stream]++;
  return {
    trade: counts.trade / seconds,
    bestbidask: counts.bestbidask / seconds,
    depth: counts.depth / seconds,
    total: (counts.trade + counts.bestbidask + counts.depth) / seconds,
  };
}

/** The range chooseActionsPerSecond keeps to. */
export const MIN_ACTIONS_PER_SECOND = 10;
export const MAX_ACTIONS_PER_SECOND = 200_000;

/**
 * The simulator's book actions per second that make its natural event rate (events per simulated second) equal
 * `rate`, so that simulated event time advances like the wall clock while publishing at `rate`. From `probe`
 * actions/s up, the depth stream's rate is fixed by the cadences and trades and bestBidAsk grow linearly with the
 * actions, so one measurement at `probe` is enough. Below it fewer diff intervals see a change, so the depth rate
 * falls too: the answer is searched on measurements, which are cheap there. Clamped to [MIN_ACTIONS_PER_SECOND,
 * MAX_ACTIONS_PER_SECOND]: at the bottom simulated time runs slower than the clock, at the top faster.
 */
export function chooseActionsPerSecond(
  rate: number,
  measure: (actionsPerSecond: number) => NaturalRates,
  probe = 500,
): number {
  const at = measure(probe);
  const variable = at.trade + at.bestbidask;
  if (!(variable > 0)) return probe;
  const linear = (probe * (rate - at.depth)) / variable;
  const aps = Math.round(Math.min(MAX_ACTIONS_PER_SECOND, Math.max(MIN_ACTIONS_PER_SECOND, linear)));
  if (aps >= probe) return aps;
  return searchActionsPerSecond(rate, measure, { aps: probe, total: at.total });
}

/** Regula falsi on the measured total between MIN_ACTIONS_PER_SECOND and `above` (whose total exceeds `rate`). */
function searchActionsPerSecond(
  rate: number,
  measure: (actionsPerSecond: number) => NaturalRates,
  above: { aps: number; total: number },
): number {
  let lo = { aps: MIN_ACTIONS_PER_SECOND, total: measure(MIN_ACTIONS_PER_SECOND).total };
  if (lo.total >= rate) return MIN_ACTIONS_PER_SECOND;
  let hi = above;
  for (let i = 0; i < 8; i++) {
    const aps = Math.round(lo.aps + ((rate - lo.total) * (hi.aps - lo.aps)) / (hi.total - lo.total));
    if (aps <= lo.aps || aps >= hi.aps) break;
    const total = measure(aps).total;
    if (Math.abs(total - rate) <= rate * 0.01) return aps;
    if (total < rate) lo = { aps, total };
    else hi = { aps, total };
  }
  return rate - lo.total <= hi.total - rate ? lo.aps : hi.aps;
}

/** Simulated time from the start to the `events`-th event: a dry run (the simulator is deterministic, and its
 * event times are the start time plus offsets that do not depend on it). */
export function simulatedSpanUs(activity: SimulatorActivity, events: number): bigint {
  const sim = new MarketSimulator({ ...activity, startTimeUs: 0n });
  let last = 0n;
  for (let i = 0; i < events; i++) last = eventTimeUs(sim.next().message);
  return last;
}

/** How far in the past an unpaced replay without an event count starts: it catches up, then follows the clock. */
export const CATCH_UP_US = 3_600_000_000n;

export interface WallClockStart {
  /** Simulated time of the first step, microseconds since the epoch. */
  readonly startTimeUs: bigint;
  /** Book actions per simulated second per symbol; undefined = the simulator's default. */
  readonly actionsPerSecond: number | undefined;
}

/**
 * Where a simulator replay starts, and how busy it is, so that its event time stays on the wall clock:
 *   paced (eventsPerSecond > 0): the activity scaled so that the natural rate equals the publishing rate, from now;
 *   unpaced with maxEvents: from now minus the simulated span of those events, so that the last one is at now;
 *   unpaced without: CATCH_UP_US before now (as fast as possible until it reaches the clock).
 * Whatever drift remains is kept from getting ahead by the producer's notBeforeEventTime. `nowUs` is read after the
 * measurement or dry run (CPU only) so that its duration does not put the events behind.
 */
export function startOnWallClock(
  activity: SimulatorActivity,
  pacing: { readonly eventsPerSecond: number; readonly maxEvents: number | undefined },
  nowUs: () => bigint,
): WallClockStart {
  if (pacing.eventsPerSecond > 0) {
    const actionsPerSecond = chooseActionsPerSecond(pacing.eventsPerSecond, (aps) =>
      measureNaturalRates({ ...activity, actionsPerSecond: aps }),
    );
    return { startTimeUs: nowUs(), actionsPerSecond };
  }
  if (pacing.maxEvents !== undefined) {
    const span = simulatedSpanUs(activity, pacing.maxEvents);
    return { startTimeUs: nowUs() - span, actionsPerSecond: activity.actionsPerSecond };
  }
  return { startTimeUs: nowUs() - CATCH_UP_US, actionsPerSecond: activity.actionsPerSecond };
}

/**
 * The time the processors hold against their clock (FUTURE_TIME): the event time, or for trades the later of the
 * event and transact times.
 */
export function eventTimeUs(message: SbeMessage): bigint {
  if (message.message === 'TradesStreamEvent' && message.transactTime > message.eventTime)
    return message.transactTime;
  return message.eventTime;
}
