import { backoff, type BackoffPolicy } from '../common/retry';
import type { Logger } from '../logging/logger';
import type { Keys } from '../state/keys';
import { logRedisFailure, type RedisOutage } from '../state/outage';
import type { RedisClient } from '../state/redis';
import {
  acquireLock,
  attemptToken,
  LOCK_TTL_SECONDS,
  releaseLock,
  renewLock,
  type ReleaseResult,
} from './lock';
import type { ReanchorReport, Reanchorer, ReanchorScope } from './reanchorer';
import {
  ensureRequestGroup,
  parseRequest,
  REANCHOR_GROUP,
  requestReanchor,
  scopeOf,
  type ReceivedRequest,
} from './requests';

// The re-anchor listener (one per sidecar): a consumer of the group `reanchor-listeners` on reanchor:requests.
// For each request it takes the symbol's lock (lock.ts) or coalesces the request into the running re-anchor, runs
// the re-anchor (reanchorer.ts) while renewing the lock and keeping its stream entry claimed, releases the lock,
// queues one follow-up when requests arrived after the snapshot was taken, and only then acknowledges the entry.
// A listener that dies leaves its entry pending: after claimIdleMs another listener claims it (XAUTOCLAIM), takes
// the lock over (same request id) and runs the re-anchor again from the start.
// Ownership: a listener holds exactly the entry it works on (it reads and claims one at a time, so no entry waits
// idle in its hands for another listener to claim and run while it would run it too), checks that the entry is
// still its own before it starts it, renews the entry only while it still holds the lock and owns the entry, and
// never acknowledges an entry another listener has claimed meanwhile (that listener finishes it).

export interface ListenerOptions {
  /** For the lock, stats and acknowledgements. */
  readonly client: RedisClient;
  /** A connection of its own for the blocking XREADGROUP. */
  readonly blockingClient: RedisClient;
  readonly keys: Keys;
  readonly symbols: readonly string[];
  /** Consumer name in the group, and the first half of the lock token. */
  readonly listenerId: string;
  readonly reanchorer: Reanchorer;
  readonly logger: Logger;
  readonly claimIdleMs: number;
  /** How long one XREADGROUP blocks (default 1000 ms): also the stop latency. */
  readonly blockMs?: number;
  /** Lock renewal and entry re-claim period while a re-anchor runs (default claimIdleMs / 3). */
  readonly renewEveryMs?: number;
  readonly lockTtlSeconds?: number;
  /** The process's Redis outage tracker: a failed poll during an outage is its (one line), not one line each. */
  readonly outage?: RedisOutage;
}

export interface ListenerStats {
  received: number;
  claimed: number;
  invalid: number;
  unknownSymbol: number;
  coalesced: number;
  /** Entries another listener claimed before this one started them (left to it). */
  notOwned: number;
  takenOver: number;
  swapped: number;
  /** Trade-gap repairs that ended (scope 'trades'). */
  repaired: number;
  failed: number;
  lockLost: number;
  followUps: number;
  errors: number;
}

export type HandledOutcome =
  | { readonly kind: 'invalid' | 'unknown-symbol' | 'coalesced' | 'not-owned' }
  | { readonly kind: 'ran'; readonly report: ReanchorReport; readonly followUp: boolean };

type StreamEntry = [id: string, fields: string[]];

/**
 * The follow-up a finished run owes the requests coalesced into it, or undefined when it covered them: a request
 * is covered when it came before the run's REST fetch and the run was of its scope or wider ('book' covers a
 * trade gap, 'trades' never covers a book request). A failed run (no fetch time) covers nothing. Pure.
 */
export function followUpScope(
  scope: ReanchorScope,
  fetchedMs: number | undefined,
  released: Pick<
    ReleaseResult,
    'pendingCount' | 'pendingLatestMs' | 'pendingBookCount' | 'pendingBookLatestMs'
  >,
): ReanchorScope | undefined {
  const after = (ms: number | undefined): boolean =>
    ms !== undefined && (fetchedMs === undefined || ms >= fetchedMs);
  if (released.pendingBookCount > 0 && (scope === 'trades' || after(released.pendingBookLatestMs))) {
    return 'book';
  }
  // Otherwise the newest request after the fetch is a trade gap (a book request there was caught above).
  return released.pendingCount > 0 && after(released.pendingLatestMs) ? 'trades' : undefined;
}

/** The wait after n failed polls in a row: 200 ms x 2^(n-1), at most 5 s, unjittered. */
const POLL_BACKOFF: BackoffPolicy = { baseDelayMs: 200, maxDelayMs: 5000, jitter: false };

export class ReanchorListener {
  private running = false;
  private groupReady = false;
  private loop: Promise<void> | undefined;
  private readonly counters: ListenerStats = {
    received: 0,
    claimed: 0,
    invalid: 0,
    unknownSymbol: 0,
    coalesced: 0,
    notOwned: 0,
    takenOver: 0,
    swapped: 0,
    repaired: 0,
    failed: 0,
    lockLost: 0,
    followUps: 0,
    errors: 0,
  };
  private readonly listeners: Array<(request: ReceivedRequest, outcome: HandledOutcome) => void> = [];

  constructor(private readonly options: ListenerOptions) {
    if (options.listenerId === '' || options.listenerId.includes('|')) {
      throw new RangeError(
        `listenerId must be non-empty without "|", got ${JSON.stringify(options.listenerId)}`,
      );
    }
  }

  get id(): string {
    return this.options.listenerId;
  }

  stats(): Readonly<ListenerStats> {
    return { ...this.counters };
  }

  /** Whether the group's pending entry `id` is held by this listener (not acknowledged, not claimed by another). */
  private async owns(id: string): Promise<boolean> {
    const { client, keys } = this.options;
    const entry = (await client.xpending(keys.reanchorRequests(), REANCHOR_GROUP, id, id, 1)) as unknown[][];
    return entry[0] !== undefined && String(entry[0][1]) === this.id;
  }

  /** Called after each handled entry (for metrics and tests). */
  onHandled(listener: (request: ReceivedRequest, outcome: HandledOutcome) => void): void {
    this.listeners.push(listener);
  }

  start(): void {
    if (this.running) throw new Error('the re-anchor listener is already running');
    this.running = true;
    this.options.logger.info('re-anchor listener started', {
      listenerId: this.id,
      group: REANCHOR_GROUP,
      claimIdleMs: this.options.claimIdleMs,
    });
    this.loop = this.run();
  }

  /** Stops after the entry in hand (a running re-anchor finishes first). */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.loop = undefined;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      try {
        await this.pollOnce();
        failures = 0;
      } catch (err) {
        this.counters.errors++;
        failures++;
        if ((err as Error).message.startsWith('NOGROUP')) this.groupReady = false; // the stream was deleted
        const delay = backoff(failures, POLL_BACKOFF);
        logRedisFailure(
          this.options.outage,
          this.options.logger,
          'warn',
          're-anchor listener: redis call failed; retrying',
          err,
          { retryInMs: delay },
        );
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** Claims entries left by dead listeners, else reads new ones (blocking up to blockMs), and handles them. */
  async pollOnce(): Promise<number> {
    const { keys, blockingClient } = this.options;
    const stream = keys.reanchorRequests();
    if (!this.groupReady) {
      // Here rather than in start(): a Redis that is down at start-up is retried by the loop, not fatal.
      await ensureRequestGroup(this.options.client, keys);
      this.groupReady = true;
    }
    const claimed = (await this.options.client.xautoclaim(
      stream,
      REANCHOR_GROUP,
      this.id,
      this.options.claimIdleMs,
      '0-0',
      'COUNT',
      1,
    )) as [string, StreamEntry[], string[]?];
    let entries = (claimed[1] ?? []).filter((e): e is StreamEntry => Array.isArray(e) && e[1] !== null);
    if (entries.length > 0) {
      this.counters.claimed += entries.length;
      this.options.logger.warn('re-anchor listener claimed requests of a listener that stopped', {
        listenerId: this.id,
        ids: entries.map((e) => e[0]),
      });
    } else {
      const read = (await blockingClient.xreadgroup(
        'GROUP',
        REANCHOR_GROUP,
        this.id,
        'COUNT',
        1,
        'BLOCK',
        this.options.blockMs ?? 1000,
        'STREAMS',
        stream,
        '>',
      )) as Array<[string, StreamEntry[]]> | null;
      entries = read?.[0]?.[1] ?? [];
    }
    for (const [id, fields] of entries) {
      this.counters.received++;
      await this.handle(id, fields);
    }
    return entries.length;
  }

  private async ack(id: string): Promise<void> {
    await this.options.client.xack(this.options.keys.reanchorRequests(), REANCHOR_GROUP, id);
  }

  private emit(request: ReceivedRequest, outcome: HandledOutcome): void {
    for (const listener of this.listeners) listener(request, outcome);
  }

  /** Handles one entry; acknowledges it once its re-anchor ended (or it was coalesced or invalid). */
  async handle(id: string, fields: string[]): Promise<HandledOutcome> {
    const { client, keys, logger } = this.options;
    let request: ReceivedRequest;
    try {
      request = parseRequest(id, fields);
    } catch (err) {
      this.counters.invalid++;
      logger.warn('re-anchor request dropped: malformed entry', {
        id,
        error: (err as Error).message,
        fields,
      });
      await this.ack(id);
      return { kind: 'invalid' };
    }
    if (!this.options.symbols.includes(request.symbol)) {
      this.counters.unknownSymbol++;
      logger.warn('re-anchor request dropped: symbol not configured', { id, symbol: request.symbol });
      await this.ack(id);
      const outcome: HandledOutcome = { kind: 'unknown-symbol' };
      this.emit(request, outcome);
      return outcome;
    }
    if (!(await this.owns(id))) {
      this.counters.notOwned++;
      logger.warn('re-anchor request claimed by another listener before it started here: left to it', {
        id,
        symbol: request.symbol,
        listenerId: this.id,
      });
      const outcome: HandledOutcome = { kind: 'not-owned' };
      this.emit(request, outcome);
      return outcome;
    }
    const ttl = this.options.lockTtlSeconds ?? LOCK_TTL_SECONDS;
    const token = attemptToken(this.id, id);
    const lock = await acquireLock(client, keys, request.symbol, token, request, ttl);
    if (lock.outcome === 'coalesced') {
      this.counters.coalesced++;
      logger.info('re-anchor request coalesced into the running re-anchor', {
        id,
        symbol: request.symbol,
        reason: request.reason,
        holder: lock.holder,
      });
      await this.ack(id);
      const outcome: HandledOutcome = { kind: 'coalesced' };
      this.emit(request, outcome);
      return outcome;
    }
    if (lock.outcome === 'taken-over') {
      this.counters.takenOver++;
      logger.warn('re-anchor taken over from a listener that stopped', {
        id,
        symbol: request.symbol,
        previousHolder: lock.holder,
      });
    }
    logger.info('re-anchor started', {
      reanchorId: id,
      symbol: request.symbol,
      reason: request.reason,
      source: request.source,
      detail: request.detail,
      listenerId: this.id,
    });

    // While it runs: renew the lock and reset the entry's idle time, so nobody claims a live re-anchor. Once the lock
    // is lost, or the entry is no longer this listener's, the renewals stop: re-claiming would take the entry back
    // from the listener that took the re-anchor over.
    let holder = true;
    const renewEveryMs = this.options.renewEveryMs ?? Math.max(50, Math.floor(this.options.claimIdleMs / 3));
    const renew = async (): Promise<void> => {
      try {
        holder = holder && (await renewLock(client, keys, request.symbol, token, ttl));
        if (holder && (await this.owns(id))) {
          // XCLAIM <key> <group> <consumer> 0 <id> JUSTID: resets the idle time (ioredis 6 types lack this form).
          await client.call('XCLAIM', keys.reanchorRequests(), REANCHOR_GROUP, this.id, '0', id, 'JUSTID');
          return;
        }
        holder = false;
        clearInterval(timer);
        logger.warn('re-anchor lock or request lost while running: renewals stopped', {
          id,
          symbol: request.symbol,
        });
      } catch (err) {
        logger.warn('re-anchor lock renewal failed', {
          id,
          symbol: request.symbol,
          error: (err as Error).message,
        });
      }
    };
    const timer = setInterval(() => void renew(), renewEveryMs);
    let report: ReanchorReport;
    try {
      report = await this.options.reanchorer.run(
        request.symbol,
        { token, held: () => holder },
        {
          reanchorId: id,
          reason: request.reason,
        },
        scopeOf(request.reason),
      );
    } finally {
      clearInterval(timer);
    }
    if (report.outcome === 'swapped') this.counters.swapped++;
    else if (report.outcome === 'repaired') this.counters.repaired++;
    else if (report.outcome === 'failed') this.counters.failed++;
    else this.counters.lockLost++;

    const released = await releaseLock(client, keys, request.symbol, token);
    // A coalesced request is covered when it came before the REST fetch of a run of its scope (or wider);
    // otherwise (or when this run failed) one follow-up request stands for all of them.
    const owed = followUpScope(report.scope, report.snapshotRequestedMs, released);
    const followUp = owed !== undefined;
    if (followUp) {
      this.counters.followUps++;
      const followUpId = await requestReanchor(client, keys, {
        symbol: request.symbol,
        reason: owed === 'trades' ? 'trade_gap' : 'coalesced',
        source: 'listener',
        detail: `${released.pendingCount} request(s) during ${id}, newest: ${released.pendingReason}`,
      });
      logger.info('re-anchor follow-up queued for requests that arrived during it', {
        id,
        followUpId,
        symbol: request.symbol,
        coalesced: released.pendingCount,
      });
    }
    // Acknowledged only while still this listener's: an entry claimed by another listener (which took the lock
    // over) is its to finish.
    if (await this.owns(id)) await this.ack(id);
    const outcome: HandledOutcome = { kind: 'ran', report, followUp };
    this.emit(request, outcome);
    return outcome;
  }
}
