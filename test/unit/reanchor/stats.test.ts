import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { Keys } from '../../../src/state/keys';
import type { RedisClient } from '../../../src/state/redis';
import {
  LOCK_COUNTERS,
  recordAttemptFailure,
  recordRunFinished,
  recordRunStarted,
  RUN_FIELDS,
  SWAP_FIELDS,
} from '../../../src/reanchor/stats';
import { repoRoot } from '../../helpers/paths';

/** A client that records the hash writes it is sent, in order. */
function recordingClient(): { client: RedisClient; calls: Array<[string, ...string[]]> } {
  const calls: Array<[string, ...string[]]> = [];
  const client = {
    hset: (key: string, ...args: string[]) => {
      calls.push(['hset', key, ...args]);
      return Promise.resolve(args.length / 2);
    },
    hincrby: (key: string, field: string, by: number) => {
      calls.push(['hincrby', key, field, String(by)]);
      return Promise.resolve(1);
    },
  } as unknown as RedisClient;
  return { client, calls };
}

describe('reanchor/stats: the one writer of reanchor:<S>:stats', () => {
  const keys = new Keys({ clusterMode: true });

  it('a run, the acquire script and a swap write disjoint fields', () => {
    const book = Object.values(RUN_FIELDS.book) as string[];
    const trades = Object.values(RUN_FIELDS.trades) as string[];
    const all = [...book, ...trades, ...SWAP_FIELDS, ...LOCK_COUNTERS];
    expect(new Set(all).size).to.equal(all.length);
  });

  it('LOCK_COUNTERS are exactly the fields lua/reanchor-acquire-3.lua increments in KEYS[3]', () => {
    const script = fs.readFileSync(
      path.join(repoRoot, 'src', 'state', 'lua', 'reanchor-acquire-3.lua'),
      'utf8',
    );
    const written = [...script.matchAll(/redis\.call\('(HSET|HINCRBY)', KEYS\[3\], '(\w+)'/g)].map(
      (m) => m[2],
    );
    expect(written).to.have.members([...LOCK_COUNTERS]);
  });

  it('recordRunStarted: the scope start time and running = 1', async () => {
    const { client, calls } = recordingClient();
    await recordRunStarted(client, keys, 'BTCUSDT', 'trades', 1234);
    expect(calls).to.deep.equal([
      ['hset', 'reanchor:{BTCUSDT}:stats', 'last_repair_started_ms', '1234', 'repair_running', '1'],
    ]);
  });

  it('recordAttemptFailure: counts the failure, then records it as the last one', async () => {
    const { client, calls } = recordingClient();
    await recordAttemptFailure(client, keys, 'BTCUSDT', 'book', 'rest: timeout', 99);
    expect(calls).to.deep.equal([
      ['hincrby', 'reanchor:{BTCUSDT}:stats', 'attempt_failures', '1'],
      ['hset', 'reanchor:{BTCUSDT}:stats', 'last_failure', 'rest: timeout', 'last_failure_ms', '99'],
    ]);
  });

  it('recordRunFinished of a swap: outcome, times, attempts, the swap fields, then swapped + 1', async () => {
    const { client, calls } = recordingClient();
    await recordRunFinished(client, keys, 'ETHUSDT', 'book', {
      outcome: 'swapped',
      ok: true,
      finishedMs: 2000,
      durationMs: 150,
      attempts: 2,
      swap: { okMs: 2001, swapMs: 3, bookUpdateId: 77n },
    });
    expect(calls).to.deep.equal([
      [
        'hset',
        'reanchor:{ETHUSDT}:stats',
        'running',
        '0',
        'last_outcome',
        'swapped',
        'last_finished_ms',
        '2000',
        'last_duration_ms',
        '150',
        'last_attempts',
        '2',
        'last_ok_ms',
        '2001',
        'last_swap_ms',
        '3',
        'last_update_id',
        '77',
      ],
      ['hincrby', 'reanchor:{ETHUSDT}:stats', 'swapped', '1'],
    ]);
  });

  it('recordRunFinished of a failed repair: the repair fields, then repair_failed + 1', async () => {
    const { client, calls } = recordingClient();
    await recordRunFinished(client, keys, 'ETHUSDT', 'trades', {
      outcome: 'failed',
      ok: false,
      finishedMs: 10,
      durationMs: 5,
      attempts: 3,
    });
    expect(calls).to.deep.equal([
      [
        'hset',
        'reanchor:{ETHUSDT}:stats',
        'repair_running',
        '0',
        'last_repair_outcome',
        'failed',
        'last_repair_finished_ms',
        '10',
        'last_repair_duration_ms',
        '5',
        'last_repair_attempts',
        '3',
      ],
      ['hincrby', 'reanchor:{ETHUSDT}:stats', 'repair_failed', '1'],
    ]);
  });
});
