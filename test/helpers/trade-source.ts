import { simulate, type SimulatedEvent } from '../../src/replay/simulator';

/** Trade events of one continuous simulated market, handed out in consecutive chunks of `count`. */
export function tradeSource(
  options: { readonly seed: number; readonly symbols: readonly string[]; readonly startTimeUs: bigint },
  maxEvents = 100_000,
): (count: number) => SimulatedEvent[] {
  const events = simulate(
    { seed: options.seed, symbols: [...options.symbols], startTimeUs: options.startTimeUs },
    maxEvents,
  );
  return (count) => {
    const out: SimulatedEvent[] = [];
    while (out.length < count) {
      const next = events.next();
      if (next.done === true) throw new Error('the simulated market ran out of events');
      if (next.value.stream === 'trade') out.push(next.value);
    }
    return out;
  };
}
