import { AggregatorError } from '../common/errors';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  SbeMessage,
  TradeEntry,
  TradesStreamEvent,
} from '../sbe/messages';

// A deterministic market simulator: the same options give the same events, byte for byte. No wall clock and no
// Math.random: time is simulated and randomness comes from a seeded PRNG.
//
// Model, per symbol: a full limit order book kept in integer units (price = tick index x tick size, qty = lots x lot
// size) so the hot path uses plain numbers, converted to SBE mantissas only when a message is built. Each "action"
// (a market order sweeping the touch, a limit order, a cancel, plus the upkeep that keeps 50+ levels per side) is one
// book change and bumps the symbol's single book update id, shared by diffs, snapshots and bestBidAsk as on Binance.
// A hidden fair price random-walks and biases where orders land and which side takes, so the mid follows it.

export type SimulatedStream = 'trade' | 'bestbidask' | 'depth';

export interface SimulatedEvent {
  readonly stream: SimulatedStream;
  readonly message: SbeMessage;
}

export interface InstrumentSpec {
  /** Initial mid price as a mantissa at the simulator's price exponent. */
  readonly initialPriceMantissa: bigint;
  /** Tick size as a mantissa at the price exponent. */
  readonly tickMantissa: bigint;
  /** Lot size as a mantissa at the quantity exponent. */
  readonly lotMantissa: bigint;
}

export interface SimulatorOptions {
  readonly seed: number;
  readonly symbols: readonly string[];
  /** Simulated time of the first event, microseconds since the epoch. */
  readonly startTimeUs: bigint;
  /** Default -8, like live BTCUSDT. */
  readonly priceExponent?: number;
  /** Default -8. */
  readonly qtyExponent?: number;
  /** Mean book actions per simulated second per symbol (default DEFAULT_ACTIONS_PER_SECOND). */
  readonly actionsPerSecond?: number;
  /** DepthDiff cadence in simulated ms (default 25). */
  readonly diffIntervalMs?: number;
  /** DepthSnapshot (depth20) cadence in simulated ms (default 50). A multiple of diffIntervalMs makes every
   * snapshot's bookUpdateId equal the preceding diff's u (diffs are emitted before snapshots at the same time). */
  readonly snapshotIntervalMs?: number;
  /** Levels per side in a DepthSnapshot event (default 20). */
  readonly snapshotLevels?: number;
  /** Per-symbol overrides; otherwise derived from the symbol (BTCUSDT ~60000 with tick 0.01, lot 0.00001). */
  readonly instruments?: Readonly<Record<string, InstrumentSpec>>;
}

/** Book actions per simulated second per symbol unless told otherwise. */
export const DEFAULT_ACTIONS_PER_SECOND = 500;

export interface BookSnapshot {
  readonly lastUpdateId: bigint;
  readonly bids: PriceLevel[];
  readonly asks: PriceLevel[];
}

/** Raised for options the simulator cannot honour; names the option. */
export class SimulatorOptionsError extends AggregatorError {
  constructor(
    readonly option: string,
    problem: string,
  ) {
    super(`simulator option ${option}: ${problem}`, { code: 'SIMULATOR_OPTIONS', context: { option } });
    this.name = 'SimulatorOptionsError';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// PRNG: sfc32 seeded through splitmix32 (fast, 128-bit state, good statistical quality; only 32-bit integer ops).

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const splitmix = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix();
    this.b = splitmix();
    this.c = splitmix();
    this.d = splitmix();
    for (let i = 0; i < 12; i++) this.uint32();
  }

  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
}

/** A stable 32-bit hash of a string (FNV-1a), to derive per-symbol constants. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const KNOWN_PRICES: Readonly<Record<string, number>> = {
  BTCUSDT: 60000,
  ETHUSDT: 3000,
  BNBUSDT: 600,
  SOLUSDT: 150,
  BTCFDUSD: 60000,
  ETHBTC: 0.05,
};

/**
 * A tick of about a millionth of the price (0.01 for BTCUSDT at ~60000) and a lot of 0.00001, each at least one
 * mantissa unit; the initial price comes from a small table (else 100..999 from the symbol's hash).
 */
export function defaultInstrument(
  symbol: string,
  priceExponent: number,
  qtyExponent: number,
): InstrumentSpec {
  const price = KNOWN_PRICES[symbol] ?? 100 + (hash32(symbol) % 900);
  // Integers only from here on: the price in units of 1e-8 (every table price is exact there).
  const priceE8 = BigInt(Math.round(price * 1e8));
  const tickExponent = priceE8.toString().length - 15; // floor(log10(price)) - 6
  const tickMantissa = tickExponent >= priceExponent ? 10n ** BigInt(tickExponent - priceExponent) : 1n;
  const atExponent =
    priceExponent <= -8
      ? priceE8 * 10n ** BigInt(-8 - priceExponent)
      : priceE8 / 10n ** BigInt(priceExponent + 8);
  const lotMantissa = 10n ** BigInt(Math.max(0, -5 - qtyExponent));
  return { initialPriceMantissa: atExponent > 0n ? atExponent : 1n, tickMantissa, lotMantissa };
}

// ---------------------------------------------------------------------------------------------------------------
// One side of a book: parallel arrays sorted best-first, so the touch is index 0.

class BookSide {
  readonly ticks: number[] = [];
  readonly lots: number[] = [];
  /** Ticks changed since the last diff (their current qty, 0 if gone, goes into the diff). */
  readonly changed = new Set<number>();

  constructor(readonly isBid: boolean) {}

  get length(): number {
    return this.ticks.length;
  }

  /** Index of `tick`, or -(insertion point) - 1. Bids are descending, asks ascending. */
  find(tick: number): number {
    let lo = 0;
    let hi = this.ticks.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const t = this.ticks[mid] as number;
      if (t === tick) return mid;
      if (this.isBid ? t > tick : t < tick) lo = mid + 1;
      else hi = mid - 1;
    }
    return -lo - 1;
  }

  add(tick: number, lots: number): void {
    const i = this.find(tick);
    if (i >= 0) this.lots[i] = (this.lots[i] as number) + lots;
    else {
      const at = -i - 1;
      this.ticks.splice(at, 0, tick);
      this.lots.splice(at, 0, lots);
    }
    this.changed.add(tick);
  }

  /** Removes `lots` at index i (the whole level when it drops to zero). */
  take(i: number, lots: number): void {
    const tick = this.ticks[i] as number;
    const left = (this.lots[i] as number) - lots;
    if (left > 0) this.lots[i] = left;
    else {
      this.ticks.splice(i, 1);
      this.lots.splice(i, 1);
    }
    this.changed.add(tick);
  }

  lotsAt(tick: number): number {
    const i = this.find(tick);
    return i >= 0 ? (this.lots[i] as number) : 0;
  }
}

interface SymbolState {
  readonly symbol: string;
  readonly tick: bigint;
  readonly lot: bigint;
  readonly bids: BookSide;
  readonly asks: BookSide;
  /** Hidden fair price in ticks (float); the book drifts toward it. */
  fair: number;
  updateId: number;
  /** Book update id covered by the last emitted diff (the next diff's U is this + 1). */
  lastDiffU: number;
  nextTradeId: number;
  nextActionUs: number;
  nextDiffUs: number;
  nextSnapshotUs: number;
  /** Last touch published as bestBidAsk, to emit only on change. */
  lastTouch: string;
}

const MIN_LEVELS = 60;
const MAX_LEVELS = 160;
const DEEP_LEVEL_SPACING = 3;

export class MarketSimulator {
  readonly priceExponent: number;
  readonly qtyExponent: number;
  readonly symbols: readonly string[];
  private readonly rng: Prng;
  private readonly startTimeUs: bigint;
  private readonly meanActionGapUs: number;
  private readonly diffIntervalUs: number;
  private readonly snapshotIntervalUs: number;
  private readonly snapshotLevels: number;
  private readonly states: SymbolState[];
  private readonly queue: SimulatedEvent[] = [];
  private queueHead = 0;
  private nowUs = 0;
  private emitted = 0;

  constructor(opts: SimulatorOptions) {
    if (!Number.isSafeInteger(opts.seed))
      throw new SimulatorOptionsError('seed', `expected an integer, got ${opts.seed}`);
    if (opts.symbols.length === 0)
      throw new SimulatorOptionsError('symbols', 'at least one symbol is required');
    if (new Set(opts.symbols).size !== opts.symbols.length) {
      throw new SimulatorOptionsError('symbols', `duplicate symbol in ${opts.symbols.join(',')}`);
    }
    this.priceExponent = opts.priceExponent ?? -8;
    this.qtyExponent = opts.qtyExponent ?? -8;
    for (const [name, e] of [
      ['priceExponent', this.priceExponent],
      ['qtyExponent', this.qtyExponent],
    ] as const) {
      if (!Number.isInteger(e) || e < -18 || e > 0)
        throw new SimulatorOptionsError(name, `expected -18..0, got ${e}`);
    }
    const actionsPerSecond = opts.actionsPerSecond ?? DEFAULT_ACTIONS_PER_SECOND;
    if (!(actionsPerSecond > 0 && actionsPerSecond <= 1_000_000)) {
      throw new SimulatorOptionsError(
        'actionsPerSecond',
        `expected 0 < n <= 1000000, got ${actionsPerSecond}`,
      );
    }
    const diffMs = opts.diffIntervalMs ?? 25;
    const snapshotMs = opts.snapshotIntervalMs ?? 50;
    for (const [name, v] of [
      ['diffIntervalMs', diffMs],
      ['snapshotIntervalMs', snapshotMs],
    ] as const) {
      if (!(Number.isInteger(v) && v >= 1))
        throw new SimulatorOptionsError(name, `expected an integer >= 1, got ${v}`);
    }
    this.snapshotLevels = opts.snapshotLevels ?? 20;
    if (!(
      Number.isInteger(this.snapshotLevels) &&
      this.snapshotLevels >= 1 &&
      this.snapshotLevels <= MIN_LEVELS
    )) {
      throw new SimulatorOptionsError(
        'snapshotLevels',
        `expected 1..${MIN_LEVELS}, got ${this.snapshotLevels}`,
      );
    }
    this.symbols = [...opts.symbols];
    this.rng = new Prng(opts.seed);
    this.startTimeUs = opts.startTimeUs;
    this.meanActionGapUs = 1e6 / actionsPerSecond;
    this.diffIntervalUs = diffMs * 1000;
    this.snapshotIntervalUs = snapshotMs * 1000;
    this.states = this.symbols.map((symbol) => this.initialState(symbol, opts.instruments?.[symbol]));
  }

  private initialState(symbol: string, spec: InstrumentSpec | undefined): SymbolState {
    const inst = spec ?? defaultInstrument(symbol, this.priceExponent, this.qtyExponent);
    if (inst.tickMantissa <= 0n || inst.lotMantissa <= 0n || inst.initialPriceMantissa <= 0n) {
      throw new SimulatorOptionsError(`instruments.${symbol}`, 'price, tick and lot must be positive');
    }
    const midTick = Number(inst.initialPriceMantissa / inst.tickMantissa);
    if (midTick < 10 * MAX_LEVELS * DEEP_LEVEL_SPACING || midTick > 2 ** 40) {
      throw new SimulatorOptionsError(
        `instruments.${symbol}`,
        `initial price is ${midTick} ticks; need 5000..2^40`,
      );
    }
    const st: SymbolState = {
      symbol,
      tick: inst.tickMantissa,
      lot: inst.lotMantissa,
      bids: new BookSide(true),
      asks: new BookSide(false),
      fair: midTick,
      updateId: 1_000_000_000 + this.rng.int(1_000_000_000),
      lastDiffU: 0,
      nextTradeId: 100_000_000 + this.rng.int(1_000_000_000),
      nextActionUs: this.actionGap(),
      nextDiffUs: this.diffIntervalUs,
      nextSnapshotUs: this.snapshotIntervalUs,
      lastTouch: '',
    };
    // A dense book near the touch, sparser further away.
    for (let i = 0; i < 100; i++) {
      const gap = i < 30 ? i : 30 + (i - 30) * DEEP_LEVEL_SPACING;
      st.bids.add(midTick - 1 - gap, this.levelLots());
      st.asks.add(midTick + 1 + gap, this.levelLots());
    }
    st.bids.changed.clear();
    st.asks.changed.clear();
    st.lastDiffU = st.updateId;
    st.lastTouch = this.touchKey(st);
    return st;
  }

  /** Simulated microseconds until the next action: uniform in [1, 2 x mean], integer. */
  private actionGap(): number {
    return 1 + Math.floor(this.rng.float() * 2 * this.meanActionGapUs);
  }

  /** A resting level's size in lots: mostly small, sometimes large (1..~300000 lots = up to ~3 BTC). */
  private levelLots(): number {
    const r = this.rng.float();
    return 1 + Math.floor(r * r * r * 300_000);
  }

  private touchKey(st: SymbolState): string {
    return `${st.bids.ticks[0]}:${st.bids.lots[0]}:${st.asks.ticks[0]}:${st.asks.lots[0]}`;
  }

  /** Events returned so far. */
  get eventCount(): number {
    return this.emitted;
  }

  /** Events already generated (their book changes applied) but not yet returned by next(). */
  get pending(): number {
    return this.queue.length - this.queueHead;
  }

  /** Simulated time of the last generated step, microseconds since the epoch. */
  get currentTimeUs(): bigint {
    return this.startTimeUs + BigInt(this.nowUs);
  }

  next(): SimulatedEvent {
    while (this.queueHead >= this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
      this.step();
    }
    const ev = this.queue[this.queueHead++] as SimulatedEvent;
    this.emitted++;
    return ev;
  }

  /** What a REST /api/v3/depth?limit=N would return now (book changes of pending events included). */
  depthSnapshot(symbol: string, limit: number): BookSnapshot {
    const st = this.state(symbol);
    return {
      lastUpdateId: BigInt(st.updateId),
      bids: this.levels(st, st.bids, limit),
      asks: this.levels(st, st.asks, limit),
    };
  }

  private state(symbol: string): SymbolState {
    const st = this.states.find((s) => s.symbol === symbol);
    if (st === undefined) throw new SimulatorOptionsError('symbol', `unknown symbol ${symbol}`);
    return st;
  }

  private levels(st: SymbolState, side: BookSide, limit: number): PriceLevel[] {
    const n = Math.min(limit, side.length);
    const out: PriceLevel[] = new Array<PriceLevel>(n);
    for (let i = 0; i < n; i++) {
      out[i] = {
        priceMantissa: BigInt(side.ticks[i] as number) * st.tick,
        qtyMantissa: BigInt(side.lots[i] as number) * st.lot,
      };
    }
    return out;
  }

  /** Advances simulated time to the earliest due timer (diff before snapshot before action, symbols in order). */
  private step(): void {
    let best: SymbolState | undefined;
    let bestAt = Infinity;
    let kind = 0; // 0 diff, 1 snapshot, 2 action
    for (const st of this.states) {
      if (st.nextDiffUs < bestAt) {
        best = st;
        bestAt = st.nextDiffUs;
        kind = 0;
      }
      if (st.nextSnapshotUs < bestAt) {
        best = st;
        bestAt = st.nextSnapshotUs;
        kind = 1;
      }
      if (st.nextActionUs < bestAt) {
        best = st;
        bestAt = st.nextActionUs;
        kind = 2;
      }
    }
    if (best === undefined) throw new Error('internal: no symbol state');
    this.nowUs = bestAt;
    if (kind === 0) {
      best.nextDiffUs += this.diffIntervalUs;
      this.emitDiff(best);
    } else if (kind === 1) {
      best.nextSnapshotUs += this.snapshotIntervalUs;
      this.emitSnapshot(best);
    } else {
      best.nextActionUs += this.actionGap();
      this.act(best);
    }
  }

  private eventTime(): bigint {
    return this.startTimeUs + BigInt(this.nowUs);
  }

  private act(st: SymbolState): void {
    const rng = this.rng;
    // The fair price random-walks about one tick per action, with rare jumps.
    st.fair += (rng.float() - 0.5) * 2 + (rng.float() < 0.002 ? (rng.float() - 0.5) * 40 : 0);
    const bestBid = st.bids.ticks[0] as number;
    const bestAsk = st.asks.ticks[0] as number;
    const mid = (bestBid + bestAsk) / 2;
    const r = rng.float();
    let trade: TradesStreamEvent | undefined;
    if (r < 0.15) {
      // A taker leaning toward the fair price: buys lift the ask when fair is above mid.
      const pBuy = Math.min(0.9, Math.max(0.1, 0.5 + (st.fair - mid) / 20));
      trade = this.takerOrder(st, rng.float() < pBuy);
    } else if (r < 0.65) {
      const isBid = rng.float() < 0.5;
      const d = Math.floor(rng.float() * rng.float() * 40);
      const anchor = Math.round(st.fair);
      if (isBid) st.bids.add(Math.min(anchor - 1 - d, bestAsk - 1), this.levelLots());
      else st.asks.add(Math.max(anchor + 1 + d, bestBid + 1), this.levelLots());
    } else {
      const side = rng.float() < 0.5 ? st.bids : st.asks;
      const i = Math.floor(rng.float() * rng.float() * Math.min(side.length, 80));
      const lots = side.lots[i] as number;
      side.take(i, rng.float() < 0.5 ? lots : 1 + Math.floor(rng.float() * lots));
    }
    this.upkeep(st.bids);
    this.upkeep(st.asks);
    st.updateId++;
    if (trade !== undefined) this.queue.push({ stream: 'trade', message: trade });
    const touch = this.touchKey(st);
    if (touch !== st.lastTouch) {
      st.lastTouch = touch;
      this.queue.push({ stream: 'bestbidask', message: this.bestBidAsk(st) });
    }
  }

  /** Keeps MIN_LEVELS..MAX_LEVELS levels per side: refill far from the touch, drop the farthest. */
  private upkeep(side: BookSide): void {
    while (side.length < MIN_LEVELS) {
      const last = side.ticks[side.length - 1] as number;
      const gap = 1 + this.rng.int(DEEP_LEVEL_SPACING * 2);
      side.add(side.isBid ? last - gap : last + gap, this.levelLots());
    }
    if (side.length > MAX_LEVELS) side.take(side.length - 1, side.lots[side.length - 1] as number);
  }

  /** A market order of random size sweeping from the touch, up to 3 levels; one trade per level touched. */
  private takerOrder(st: SymbolState, takerBuys: boolean): TradesStreamEvent {
    const side = takerBuys ? st.asks : st.bids;
    const r = this.rng.float();
    let remaining = 1 + Math.floor(r * r * r * r * 200_000);
    const trades: TradeEntry[] = [];
    while (remaining > 0 && trades.length < 3) {
      const tick = side.ticks[0] as number;
      const fill = Math.min(remaining, side.lots[0] as number);
      side.take(0, fill);
      remaining -= fill;
      trades.push({
        id: BigInt(st.nextTradeId++),
        priceMantissa: BigInt(tick) * st.tick,
        qtyMantissa: BigInt(fill) * st.lot,
        isBuyerMaker: !takerBuys,
        isBestMatch: true,
      });
    }
    const t = this.eventTime();
    return {
      message: 'TradesStreamEvent',
      eventTime: t,
      transactTime: t,
      priceExponent: this.priceExponent,
      qtyExponent: this.qtyExponent,
      trades,
      symbol: st.symbol,
    };
  }

  private bestBidAsk(st: SymbolState): BestBidAskStreamEvent {
    return {
      message: 'BestBidAskStreamEvent',
      eventTime: this.eventTime(),
      bookUpdateId: BigInt(st.updateId),
      priceExponent: this.priceExponent,
      qtyExponent: this.qtyExponent,
      bidPriceMantissa: BigInt(st.bids.ticks[0] as number) * st.tick,
      bidQtyMantissa: BigInt(st.bids.lots[0] as number) * st.lot,
      askPriceMantissa: BigInt(st.asks.ticks[0] as number) * st.tick,
      askQtyMantissa: BigInt(st.asks.lots[0] as number) * st.lot,
      symbol: st.symbol,
    };
  }

  private changedLevels(st: SymbolState, side: BookSide): PriceLevel[] {
    const ticks = [...side.changed].sort((a, b) => (side.isBid ? b - a : a - b));
    side.changed.clear();
    return ticks.map((t) => ({
      priceMantissa: BigInt(t) * st.tick,
      qtyMantissa: BigInt(side.lotsAt(t)) * st.lot,
    }));
  }

  /** Diffs only when the book changed since the last one (Binance sends no empty diffs). */
  private emitDiff(st: SymbolState): void {
    if (st.updateId === st.lastDiffU) return;
    const diff: DepthDiffStreamEvent = {
      message: 'DepthDiffStreamEvent',
      eventTime: this.eventTime(),
      firstBookUpdateId: BigInt(st.lastDiffU + 1),
      lastBookUpdateId: BigInt(st.updateId),
      priceExponent: this.priceExponent,
      qtyExponent: this.qtyExponent,
      bids: this.changedLevels(st, st.bids),
      asks: this.changedLevels(st, st.asks),
      symbol: st.symbol,
    };
    st.lastDiffU = st.updateId;
    this.queue.push({ stream: 'depth', message: diff });
  }

  private emitSnapshot(st: SymbolState): void {
    const snap: DepthSnapshotStreamEvent = {
      message: 'DepthSnapshotStreamEvent',
      eventTime: this.eventTime(),
      bookUpdateId: BigInt(st.updateId),
      priceExponent: this.priceExponent,
      qtyExponent: this.qtyExponent,
      bids: this.levels(st, st.bids, this.snapshotLevels),
      asks: this.levels(st, st.asks, this.snapshotLevels),
      symbol: st.symbol,
    };
    this.queue.push({ stream: 'depth', message: snap });
  }
}

/** The first `count` events of a simulator built from `opts`. */
export function* simulate(opts: SimulatorOptions, count: number): Generator<SimulatedEvent, void, undefined> {
  const sim = new MarketSimulator(opts);
  for (let i = 0; i < count; i++) yield sim.next();
}
