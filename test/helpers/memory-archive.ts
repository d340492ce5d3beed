import type { ArchiveItem, ArchiveReader } from '../../src/archive/types';
import { MarketSimulator, type SimulatedEvent, type SimulatedStream } from '../../src/replay/simulator';
import { encodeMessage } from '../../src/sbe/encoder';

// An in-memory ArchiveReader for the dataset builder's tests: simulated events encoded as SBE frames, each
// stream's frames cut into "objects" of `framesPerObject` frames (key <stream>/obj-<n>, offsets as in the
// object's bytes). Extra items (damage, corrupt frames) can be placed after a given frame of a stream.

export const STREAM_NAMES: Readonly<Record<SimulatedStream, string>> = {
  trade: 'market-sbe-trade',
  bestbidask: 'market-sbe-bestbidask',
  depth: 'market-sbe-depth',
};

export interface MemoryArchiveOptions {
  readonly framesPerObject?: number;
  /** Extra items of a stream, inserted after its frame index `after` (with their own key/offset). */
  readonly extra?: ReadonlyArray<{
    readonly stream: string;
    readonly after: number;
    readonly item: ArchiveItem;
  }>;
}

export interface MemoryArchive extends ArchiveReader {
  /** Every item of a stream, in order (what read() yields). */
  readonly items: ReadonlyMap<string, readonly ArchiveItem[]>;
}

export function memoryArchive(
  events: readonly SimulatedEvent[],
  options: MemoryArchiveOptions = {},
): MemoryArchive {
  const perObject = options.framesPerObject ?? 200;
  const items = new Map<string, ArchiveItem[]>(Object.values(STREAM_NAMES).map((s) => [s, []]));
  const counters = new Map<string, { frames: number; offset: number }>();
  for (const e of events) {
    const stream = STREAM_NAMES[e.stream];
    const c = counters.get(stream) ?? { frames: 0, offset: 0 };
    if (c.frames % perObject === 0) c.offset = 0;
    const bytes = encodeMessage(e.message);
    const key = `${stream}/obj-${Math.floor(c.frames / perObject)}`;
    items.get(stream)!.push({ kind: 'frame', frame: { stream, key, offset: c.offset, bytes } });
    c.offset += bytes.length;
    c.frames++;
    counters.set(stream, c);
  }
  for (const x of [...(options.extra ?? [])].sort((a, b) => b.after - a.after)) {
    items.get(x.stream)?.splice(x.after + 1, 0, x.item);
  }
  return {
    items,
    streams: () => Promise.resolve([...items.keys()]),
    read: async function* (stream: string) {
      await Promise.resolve();
      yield* items.get(stream) ?? [];
    },
  };
}

/** The simulator's events from startTimeUs until (not including) the first event at or after endUs. */
export function simulateUntil(
  seed: number,
  symbols: readonly string[],
  startTimeUs: bigint,
  endUs: bigint,
  actionsPerSecond = 100,
): SimulatedEvent[] {
  const sim = new MarketSimulator({ seed, symbols, startTimeUs, actionsPerSecond });
  const out: SimulatedEvent[] = [];
  for (;;) {
    const e = sim.next();
    if (e.message.eventTime >= endUs) return out;
    out.push(e);
  }
}
