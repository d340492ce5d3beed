import type { Result } from 'ioredis';
import type { FeatureVector } from '../features/types';
import { ScriptReplyError } from '../state/errors';
import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';

// The sidecar's three Redis operations (lease renew/release, conditional write), each one Lua script
// (src/state/lua/renew-feature-lease-1.lua, release-feature-lease-1.lua, write-features-3.lua).

declare module 'ioredis' {
  interface RedisCommander<Context> {
    renewFeatureLease(leaseKey: string, sidecarId: string, ttlMs: string): Result<number, Context>;
    releaseFeatureLease(leaseKey: string, sidecarId: string): Result<number, Context>;
    writeFeatures(
      featKey: string,
      historyKey: string,
      leaseKey: string,
      ...args: string[]
    ): Result<number, Context>;
  }
}

/** TTL of feat:<SYMBOL> (seed contract). */
export const FEATURE_TTL_MS = 120_000;

export type LeaseOutcome = 'acquired' | 'renewed' | 'held-by-other';
export type WriteOutcome = 'written' | 'not-holder' | 'stale-tick';

export interface FeatureWrite {
  readonly symbol: string;
  readonly sidecarId: string;
  readonly tickMs: number;
  readonly vector: FeatureVector;
  readonly historyMaxLen: number;
  readonly ttlMs?: number;
}

/** What the sidecar needs from Redis; the unit tests fake it. Every operation is idempotent. */
export interface FeatureStore {
  renewLease(symbol: string, sidecarId: string, ttlMs: number): Promise<LeaseOutcome>;
  releaseLease(symbol: string, sidecarId: string): Promise<boolean>;
  write(write: FeatureWrite): Promise<WriteOutcome>;
}

/** Flattens a vector into HSET/XADD field, value pairs (numbers as JS renders them; finite by contract). */
export function vectorFields(vector: FeatureVector): string[] {
  const args: string[] = [];
  for (const [field, value] of Object.entries(vector)) args.push(field, String(value));
  return args;
}

export function leaseOutcome(code: number): LeaseOutcome {
  if (code === 2) return 'renewed';
  if (code === 1) return 'acquired';
  if (code === 0) return 'held-by-other';
  throw new ScriptReplyError('renewFeatureLease', `renew-feature-lease returned an unknown code ${code}`);
}

export function writeOutcome(code: number): WriteOutcome {
  if (code === 1) return 'written';
  if (code === -1) return 'not-holder';
  if (code === -2) return 'stale-tick';
  throw new ScriptReplyError('writeFeatures', `write-features returned an unknown code ${code}`);
}

export class RedisFeatureStore implements FeatureStore {
  constructor(
    private readonly client: RedisClient,
    private readonly keys: Keys,
  ) {}

  async renewLease(symbol: string, sidecarId: string, ttlMs: number): Promise<LeaseOutcome> {
    const code = await this.client.renewFeatureLease(
      this.keys.featureLease(symbol),
      sidecarId,
      String(Math.round(ttlMs)),
    );
    return leaseOutcome(code);
  }

  async releaseLease(symbol: string, sidecarId: string): Promise<boolean> {
    return (await this.client.releaseFeatureLease(this.keys.featureLease(symbol), sidecarId)) === 1;
  }

  async write(write: FeatureWrite): Promise<WriteOutcome> {
    const fields = vectorFields(write.vector);
    if (fields.length === 0) throw new Error(`empty feature vector for ${write.symbol}`);
    const code = await this.client.writeFeatures(
      this.keys.features(write.symbol),
      this.keys.featureHistory(write.symbol),
      this.keys.featureLease(write.symbol),
      write.sidecarId,
      String(write.tickMs),
      String(write.ttlMs ?? FEATURE_TTL_MS),
      String(write.historyMaxLen),
      ...fields,
    );
    return writeOutcome(code);
  }
}

/** The served vector of a symbol as stored (exact strings), its TTL and the holder of its feature lease. */
export interface ServedFeatures {
  readonly symbol: string;
  readonly key: string;
  readonly vector: Readonly<Record<string, string>>;
  /** PTTL of feat:<SYMBOL>: -2 when it does not exist. */
  readonly ttlMs: number;
  readonly leaseHolder: string | null;
}

/** Reads feat:<SYMBOL>, its TTL and its lease holder (what `aggregator features show` prints). */
export async function readServedFeatures(
  client: RedisClient,
  keys: Keys,
  symbol: string,
): Promise<ServedFeatures> {
  const [vector, ttlMs, leaseHolder] = await Promise.all([
    client.hgetall(keys.features(symbol)),
    client.pttl(keys.features(symbol)),
    client.get(keys.featureLease(symbol)),
  ]);
  return { symbol, key: keys.features(symbol), vector, ttlMs, leaseHolder };
}
