import type { SbeMessage } from '../sbe/messages';
import { MarketSimulator } from './simulator';
import type { SimulatorOptions } from './simulator';

// Keeping a simulator's event time on the wall clock, shared by the replay (src/cli/commands/replay.ts) and the
// soak (src/bench/soak.ts). The simulator's time is simulated: how fast it advances against the clock depends on
// how many events per simulated second it generates (its natural rate) and how fast they are published.

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

/**
 * The simulator's book actions per second that make its natural event rate (events per simulated second) equal
 * `rate`, so that simulated event time advances like the wall clock while publishing at `rate`. The depth
 * stream's rate is fixed by the cadences; trades and bestBidAsk grow linearly with the actions, so one
 * measurement at `probe` actions/s is enough. Clamped to [10, 200000] (below, simulated time runs slower).
 */
export function chooseActionsPerSecond(
  rate: number,
  measure: (actionsPerSecond: number) => NaturalRates,
  probe = 500,
): number {
  const at = measure(probe);
  const variable = at.trade + at.bestbidask;
  if (!(variable > 0)) return probe;
  const aps = (probe * (rate - at.depth)) / variable;
  return Math.round(Math.min(200_000, Math.max(10, aps)));
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
