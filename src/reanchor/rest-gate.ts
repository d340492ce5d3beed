import type { Result } from 'ioredis';
import type { RestBan, RestGate } from '../rest/client';
import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';

// The REST client's gate for a fleet (src/rest/client.ts RestGate): Binance limits request weight and bans per IP,
// not per process, so every listener of every sidecar reads one ban and charges one weight budget in Redis
// (Keys.restBan, Keys.restWeight; lua/reanchor-rest-ban-1.lua, lua/reanchor-rest-weight-1.lua).

declare module 'ioredis' {
  interface RedisCommander<Context> {
    reanchorRestBan(key: string, untilMs: string, status: string): Result<number, Context>;
    reanchorRestWeight(key: string, weight: string, limit: string, chargeId: string): Result<number, Context>;
  }
}

/** The fleet's recorded ban (reanchor:rest:ban), if one is there; past or not (the key expires when it ends). */
export async function readRestBan(client: RedisClient, keys: Keys): Promise<RestBan | undefined> {
  const [until, status] = await client.hmget(keys.restBan(), 'until_ms', 'status');
  if (until === null || until === undefined || !/^\d+$/.test(until)) return undefined;
  return {
    untilMs: Number(until),
    status: status !== null && status !== undefined && /^\d+$/.test(status) ? Number(status) : undefined,
  };
}

export class RedisRestGate implements RestGate {
  private charges = 0;

  constructor(
    private readonly client: RedisClient,
    private readonly keys: Keys,
    /** Unique per client in the fleet (the listener id): charge ids are `<owner>:<n>`. */
    private readonly owner: string,
  ) {
    if (owner === '' || owner.includes('|')) {
      throw new RangeError(`the gate's owner must be non-empty without "|", got ${JSON.stringify(owner)}`);
    }
  }

  bannedUntil(): Promise<RestBan | undefined> {
    return readRestBan(this.client, this.keys);
  }

  async ban(untilMs: number, status: number): Promise<void> {
    await this.client.reanchorRestBan(this.keys.restBan(), String(Math.ceil(untilMs)), String(status));
  }

  async reserve(weight: number, limit: number): Promise<number> {
    this.charges++;
    const wait = await this.client.reanchorRestWeight(
      this.keys.restWeight(),
      String(weight),
      String(limit),
      `${this.owner}:${Date.now()}:${this.charges}`,
    );
    return wait < 0 ? Infinity : wait;
  }
}
