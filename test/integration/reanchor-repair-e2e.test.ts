import { expect } from 'chai';
import { REANCHOR_GROUP } from '../../src/reanchor/requests';
import type { SimulatedEvent } from '../../src/replay/simulator';
import {
  SimulatedExchange,
  startSimExchangeServer,
  type SimExchangeServer,
  type SimRequest,
} from '../../src/dev/rest/sim-server';
import type { DepthDiffStreamEvent, TradesStreamEvent } from '../../src/sbe/messages';
import { Keys } from '../../src/state/keys';
import { ReferenceBook } from '../helpers/book-reference';
import { PipelinePublisher, pipelineState, referenceState, waitForCheckpoints } from '../helpers/exactness';
import { startPipeline, waitUntil, type Pipeline } from '../helpers/pipeline';
import { spawnSidecar, type SidecarProcess } from '../helpers/sidecar-process';
import { tradeView, viewDiff } from '../helpers/trade-view';

// Issue 12 end to end, with the real parts: simulated exchange events published to kinesis-mock, the real KCL
// MultiLangDaemons of the trade and depth streams and their `aggregator process` children, two real `aggregator
// sidecar` processes (two listeners of the re-anchor group) fetching from the simulated exchange's HTTP server.
// Injected: a lost depth diff whose re-anchor meets a 418 with Retry-After, lost trade messages whose repair meets a
// 429 with Retry-After. The exchange counts every request: none may arrive while a ban it announced runs. At the
// end the book equals the true book and the trade state equals the reference over every trade the exchange made,
// the lost ones included (repaired from REST trades, no book rebuilt for them).

const S = 'BTCUSDT';
const keys = new Keys({ clusterMode: false });
const BAN_SECONDS = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fieldsOf(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

function sorted(entries: Iterable<[string, string]>): Record<string, string> {
  return Object.fromEntries([...entries].sort(([a], [b]) => a.localeCompare(b)));
}

describe('re-anchor end to end: trade gaps repaired, depth gap re-anchored, 418/429 bans honoured by two sidecars', function () {
  this.timeout(420_000);
  let rest: SimExchangeServer | undefined;
  let pipeline: Pipeline | undefined;
  const sidecars: SidecarProcess[] = [];
  let publisher: PipelinePublisher | undefined;

  after(async function () {
    for (const s of sidecars) await s.stop();
    await rest?.stop();
    publisher?.close();
    await pipeline?.stop();
  });

  it('ends with the book and the trade state exact, and no request sent during a ban', async function () {
    const started = Date.now();
    const exchange = new SimulatedExchange({ seed: 31, symbols: [S], startTimeUs: 1_768_000_000_000_000n });
    const initial = exchange.depth(S, 5000);
    rest = await startSimExchangeServer({ port: 0, exchange });
    const r = rest;
    pipeline = await startPipeline({
      shards: { trade: 1, bestbidask: 1, depth: 1 },
      symbols: [S],
      label: 'reanchor-repair-e2e',
      extraYaml:
        `reanchor:\n  rest:\n    base_url: '${r.url}'\n    depth_limit: 1000\n    max_retries: 1\n` +
        `  max_attempts: 8\n  backoff_base_ms: 100\n  backoff_max_ms: 400\n` +
        `  claim_idle_ms: 30000\n  stale_after_seconds: 3600\n  request_interval_seconds: 1\n`,
    });
    const p = pipeline;
    p.startDaemon('depth');
    p.startDaemon('trade');
    publisher = new PipelinePublisher(p);
    const pub = publisher;

    // Every event the exchange makes (trade and depth streams; no daemon reads bestbidask), in order; `lost` ones are
    // never published.
    const made: SimulatedEvent[] = [];
    const diffs: DepthDiffStreamEvent[] = [];
    const lostTrades: TradesStreamEvent[] = [];
    let lostDiffs = 0;
    const take = (n: number): SimulatedEvent[] => {
      const out: SimulatedEvent[] = [];
      while (out.length < n) {
        const ev = exchange.next();
        if (ev.stream === 'bestbidask') continue;
        if (ev.message.message === 'DepthDiffStreamEvent') diffs.push(ev.message);
        made.push(ev);
        out.push(ev);
      }
      return out;
    };
    /** Publishes n events, minus the first `dropTrades` trade messages and the first `dropDiffs` diffs among them. */
    const publish = async (n: number, drop: { trades?: number; diffs?: number } = {}): Promise<void> => {
      let trades = drop.trades ?? 0;
      let ds = drop.diffs ?? 0;
      const kept = take(n).filter((ev, i) => {
        if (i < 10) return true; // a lost message has neighbours before it in the same batch
        if (trades > 0 && ev.message.message === 'TradesStreamEvent') {
          trades--;
          lostTrades.push(ev.message);
          return false;
        }
        if (ds > 0 && ev.message.message === 'DepthDiffStreamEvent') {
          ds--;
          lostDiffs++;
          return false;
        }
        return true;
      });
      await pub.publish(kept);
    };

    const stats = () => p.redis.hgetall(keys.reanchorStats(S));
    const bookState = () => p.redis.hgetall(keys.bookState(S));
    const tradeState = () => p.redis.hgetall(keys.tradeState(S));
    const explain = async () =>
      `book ${JSON.stringify(await bookState())}; trades ${JSON.stringify(await tradeState())}; stats ` +
      `${JSON.stringify(await stats())}; requests ${r.requests
        .slice(-6)
        .map((q) => `${q.path.split('?')[0]}:${q.status}`)
        .join(', ')}; sidecar stderr ${sidecars.map((s) => s.stderr().slice(-1200)).join('\n---\n')}`;
    const quiet = async (): Promise<boolean> => {
      if ((await p.redis.exists(keys.reanchorFlag(S), keys.reanchorPending(S))) !== 0) return false;
      const pending = (await p.redis.xpending(keys.reanchorRequests(), REANCHOR_GROUP)) as [number];
      if (pending[0] !== 0) return false;
      const last = await p.redis.xrevrange(keys.reanchorRequests(), '+', '-', 'COUNT', 1);
      const groups = (await p.redis.xinfo('GROUPS', keys.reanchorRequests())) as string[][];
      return (
        groups.map(fieldsOf).find((g) => g.name === REANCHOR_GROUP)?.['last-delivered-id'] === last[0]?.[0]
      );
    };
    /** The requests that arrived during the ban announced by the answer `banned`, in flight ones excepted. */
    const sentDuringBan = (banned: SimRequest, seconds: number): SimRequest[] =>
      r.requests.filter((q) => q.atMs > banned.atMs + 200 && q.atMs < banned.atMs + seconds * 1000 - 50);

    // 1. ~1000 events, then two sidecars: the first anchor (their monitors request it).
    await publish(1000);
    await waitForCheckpoints(p, pub.latest, 150_000);
    sidecars.push(spawnSidecar(p.configFile, 'sc-1'), spawnSidecar(p.configFile, 'sc-2'));
    await waitUntil(
      async () => (await bookState()).status === 'in_sync' && (await quiet()),
      90_000,
      'the first anchor',
      explain,
    );

    // 2. A lost depth diff: the processor requests depth_gap; the re-anchor's depth request is answered 418 with
    //    Retry-After: the fleet waits it out, then re-anchors.
    r.faults.add({ kind: 'status', status: 418, retryAfterSeconds: BAN_SECONDS }, 1, 'depth');
    const swappedBefore = Number((await stats()).swapped ?? 0);
    await publish(300, { diffs: 1 });
    await waitForCheckpoints(p, pub.latest, 120_000);
    await waitUntil(
      async () =>
        Number((await stats()).swapped ?? 0) > swappedBefore &&
        (await bookState()).status === 'in_sync' &&
        (await quiet()),
      90_000,
      'the re-anchor after the depth gap and the 418',
      explain,
    );
    const ban418 = r.requests.find((q) => q.status === 418);
    expect(ban418, 'the 418 was served').to.not.equal(undefined);
    expect(sentDuringBan(ban418!, BAN_SECONDS).map((q) => q.path)).to.deep.equal([]);

    // 3. Lost trade messages (two in one batch, one in the next): the processor requests trade_gap; the repair's
    //    trades request is answered 429 with Retry-After: waited out, then repaired, with no depth request.
    r.faults.add({ kind: 'status', status: 429, retryAfterSeconds: BAN_SECONDS }, 1, 'trades');
    const requestsBefore = r.requests.length;
    await publish(120, { trades: 2 });
    await publish(120, { trades: 1 });
    await waitForCheckpoints(p, pub.latest, 120_000);
    await waitUntil(
      async () => {
        const st = await tradeState();
        return Number(st.gaps_repaired ?? 0) >= 1 && st.open_gaps === '' && (await quiet());
      },
      90_000,
      'the trade gaps repaired',
      explain,
    );
    const ban429 = r.requests.find((q) => q.status === 429);
    expect(ban429, 'the 429 was served').to.not.equal(undefined);
    expect(sentDuringBan(ban429!, BAN_SECONDS).map((q) => q.path)).to.deep.equal([]);
    const phase3 = r.requests.slice(requestsBefore).map((q) => q.path.split('?')[0]);
    expect(phase3, 'a trade gap rebuilds no book').to.not.include('/api/v3/depth');
    const swaps = Number((await stats()).swapped ?? 0);

    // 4. A few more events (the repaired trades stay inside the windows), then the end state.
    await publish(60);
    await waitForCheckpoints(p, pub.latest, 120_000);
    await waitUntil(quiet, 30_000, 'quiet at the end', explain);
    await sleep(500);
    const live = await pipelineState(p);
    const reference = await referenceState(p.stack.redisPort, made, { db: 1 });

    // The book: the initial snapshot plus every diff made, the lost one included.
    const ref = new ReferenceBook({ levels: 10, bufferMax: 1_000_000 });
    expect(
      ref.anchor({
        lastUpdateId: initial.lastUpdateId,
        priceExponent: exchange.simulator.priceExponent,
        qtyExponent: exchange.simulator.qtyExponent,
        bids: initial.bids,
        asks: initial.asks,
        timeUs: 1_768_000_000_000_000n,
      }).code,
    ).to.equal(1);
    const applied = ref.applyDepthBatch(diffs);
    expect(applied.gap || applied.crossed).to.equal(false);
    const book = await bookState();
    expect(book.status).to.equal('in_sync');
    expect(book.book_update_id).to.equal(diffs[diffs.length - 1]!.lastBookUpdateId.toString());
    expect(sorted(Object.entries(await p.redis.hgetall(keys.bookLevels(S, 'bids'))))).to.deep.equal(
      sorted(ref.bids),
    );
    expect(sorted(Object.entries(await p.redis.hgetall(keys.bookLevels(S, 'asks'))))).to.deep.equal(
      sorted(ref.asks),
    );
    expect(Number((await stats()).swapped ?? 0), 'no swap after the trade gaps').to.equal(swaps);

    // The trades: every trade once, the lost ones included, and they are still inside the 5 s window.
    const state = await tradeState();
    const missing = lostTrades.reduce((n, m) => n + m.trades.length, 0);
    expect(state.trades_repaired).to.equal(String(missing));
    expect(state.gap_count ?? '0').to.equal('0');
    const newest = BigInt(state.event_time_us!);
    for (const m of lostTrades)
      expect(m.transactTime > newest - 4_900_000n, 'in the 5 s window').to.equal(true);
    const liveView = tradeView(live, S, { repaired: true });
    const refView = tradeView(reference, S, { repaired: true });
    expect(liveView, viewDiff(liveView, refView)).to.deep.equal(refView);

    const requests = (await p.redis.xrange(keys.reanchorRequests(), '-', '+')).map(([, f]) => fieldsOf(f));
    process.stdout.write(
      `      reanchor-repair-e2e: ${made.length} events made, ${lostDiffs} diff and ${lostTrades.length} trade ` +
        `messages (${missing} trades) lost; ${r.requests.length} REST requests (${
          r.requests.filter((q) => q.status !== 200).length
        } answered 418/429); requests ${requests.map((q) => `${q.source}:${q.reason}`).join(', ')}; ` +
        `${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
  });
});
