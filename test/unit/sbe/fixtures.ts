// Shared test support for the SBE codec tests: the published vectors and a seeded generator of random messages.
import fs from 'node:fs';
import path from 'node:path';
import { SbeDecodeError, type PriceLevel, type SbeMessage, type TradeEntry } from '../../../src/sbe';
import { sharedDir } from '../../helpers/paths';

export const vectorsDir = path.join(sharedDir, 'vectors/sbe');

export interface Vector {
  readonly name: string;
  readonly hex: string;
  readonly expected: Record<string, unknown>;
}

export function loadVectors(): Vector[] {
  return fs
    .readFileSync(path.join(vectorsDir, 'vectors.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Vector);
}

/** Runs fn and returns the SbeDecodeError it throws; anything else (or nothing) fails the test. */
export function decodeError(fn: () => unknown): SbeDecodeError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SbeDecodeError) return err;
    throw err;
  }
  throw new Error('expected an SbeDecodeError, nothing was thrown');
}

export const INT64_MIN = -(1n << 63n);
export const INT64_MAX = (1n << 63n) - 1n;

/** mulberry32: a tiny deterministic PRNG, so every failure reproduces from its seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    const x = xs[this.int(0, xs.length - 1)];
    if (x === undefined) throw new Error('pick from an empty list');
    return x;
  }
  bool(): boolean {
    return this.next() < 0.5;
  }
  /** Any int64, biased towards the edges and small values where bugs live. */
  int64(): bigint {
    const r = this.next();
    if (r < 0.1) return this.pick([INT64_MIN, INT64_MAX, 0n, -1n, 1n, INT64_MIN + 1n, INT64_MAX - 1n]);
    if (r < 0.4) return BigInt(this.int(-1_000_000, 1_000_000));
    const hi = BigInt(this.int(0, 0xffffffff));
    const lo = BigInt(this.int(0, 0xffffffff));
    return BigInt.asIntN(64, (hi << 32n) | lo);
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(0, 255);
    return b;
  }
}

const SYMBOLS = [
  'BTCUSDT',
  'ETHUSDT',
  '',
  'X',
  '币安人生USDT',
  'ÄÖÜUSDT',
  '🚀MOONUSDT',
  '\uFEFFBOM',
  'A'.repeat(255),
];

export function randomSymbol(rng: Rng): string {
  if (rng.float() < 0.2) {
    // Random code points (valid scalar values only), within 255 UTF-8 bytes.
    let s = '';
    const n = rng.int(0, 40);
    for (let i = 0; i < n; i++) {
      let cp = rng.pick([
        rng.int(0x20, 0x7e),
        rng.int(0x80, 0x7ff),
        rng.int(0x800, 0xd7ff),
        rng.int(0x10000, 0x10ffff),
      ]);
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;
      s += String.fromCodePoint(cp);
    }
    return s;
  }
  return rng.pick(SYMBOLS);
}

function exponent(rng: Rng): number {
  return rng.pick([-8, -2, 0, 2, -128, 127, rng.int(-128, 127)]);
}

function levels(rng: Rng, n: number): PriceLevel[] {
  return Array.from({ length: n }, () => ({ priceMantissa: rng.int64(), qtyMantissa: rng.int64() }));
}

export function randomMessage(rng: Rng): SbeMessage {
  const base = {
    eventTime: rng.int64(),
    priceExponent: exponent(rng),
    qtyExponent: exponent(rng),
    symbol: randomSymbol(rng),
  };
  switch (rng.int(0, 3)) {
    case 0: {
      const trades: TradeEntry[] = Array.from({ length: rng.pick([0, 1, 1, 2, 3, rng.int(0, 60)]) }, () => ({
        id: rng.int64(),
        priceMantissa: rng.int64(),
        qtyMantissa: rng.int64(),
        isBuyerMaker: rng.bool(),
        isBestMatch: true,
      }));
      return { message: 'TradesStreamEvent', ...base, transactTime: rng.int64(), trades };
    }
    case 1:
      return {
        message: 'BestBidAskStreamEvent',
        ...base,
        bookUpdateId: rng.int64(),
        bidPriceMantissa: rng.int64(),
        bidQtyMantissa: rng.int64(),
        askPriceMantissa: rng.int64(),
        askQtyMantissa: rng.int64(),
      };
    case 2: {
      // depth20 is top-20 per side: full 20x20 often, empty sides sometimes.
      const n = (): number => rng.pick([20, 20, 0, rng.int(0, 20)]);
      return {
        message: 'DepthSnapshotStreamEvent',
        ...base,
        bookUpdateId: rng.int64(),
        bids: levels(rng, n()),
        asks: levels(rng, n()),
      };
    }
    default: {
      const n = (): number => rng.pick([0, 1, 3, rng.int(0, 100)]);
      return {
        message: 'DepthDiffStreamEvent',
        ...base,
        firstBookUpdateId: rng.int64(),
        lastBookUpdateId: rng.int64(),
        bids: levels(rng, n()),
        asks: levels(rng, n()),
      };
    }
  }
}
