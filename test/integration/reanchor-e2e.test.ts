import { expect } from 'chai';
import { applicationName } from '../../src/config/config';
import { createDynamoClient, readLeases } from '../../src/ops/leases';
import { REANCHOR_GROUP } from '../../src/reanchor/requests';
import type { SimulatedEvent } from '../../src/replay/simulator';
import {
  createKinesisClient,
  publishEvents,
  putRecordsWith,
  type PublishSummary,
} from '../../src/replay/producer';
import {
  SimulatedExchange,
  startSimExchangeServer,
  type SimExchangeServer,
} from '../../src/dev/rest/sim-server';
import type { DepthDiffStreamEvent } from '../../src/sbe/messages';
import { Keys } from '../../src/state/keys';
import { ReferenceBook } from '../helpers/book-reference';
import { spawnSidecar, type SidecarProcess } from '../helpers/sidecar-process';
import { startPipeline, waitUntil, type Pipeline } from '../helpers/pipeline';

// Re-anchoring end to end with the real parts: simulated exchange events published to kinesis-mock, the real KCL
// MultiLangDaemon of the depth stream and its `aggregator process` children writing Redis, a real
// `aggregator sidecar` process (feature sidecar + re-anchor listener + monitor) fetching REST snapshots from the
// simulated exchange's HTTP server. One depth diff is lost on the way: the processor detects the gap and requests
// a re-anchor, the sidecar re-anchors, and the book ends equal to the true book (the initial snapshot plus every
// diff the exchange handed out, the lost one included).

const S = 'BTCUSDT';
const keys = new Keys({ clusterMode: false });

function sorted(entries: Iterable<[string, string]>): Record<string, string> {
  return Object.fromEntries([...entries].sort(([a], [b]) => a.localeCompare(b)));
}

function fieldsOf(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

describe('re-anchor end to end: lost depth diff -> real processor request -> real sidecar re-anchor', function () {
  this.timeout(300_000);
  let rest: SimExchangeServer | undefined;
  let pipeline: Pipeline | undefined;
  let sidecar: SidecarProcess | undefined;

  after(async function () {
    await sidecar?.stop();
    await rest?.stop();
    await pipeline?.stop();
  });

  it('the book ends equal to the initial snapshot plus every diff handed out, after two re-anchors', async function () {
    const started = Date.now();
    const exchange = new SimulatedExchange({ seed: 11, symbols: [S], startTimeUs: 1_765_000_000_000_000n });
    // The true book before any event is handed out.
    const initial = exchange.depth(S, 5000);
    rest = await startSimExchangeServer({ port: 0, exchange });
    pipeline = await startPipeline({
      shards: { trade: 1, bestbidask: 1, depth: 1 },
      symbols: [S],
      label: 'reanchor-e2e',
      extraYaml:
        `reanchor:\n  rest:\n    base_url: '${rest.url}'\n    depth_limit: 5000\n` +
        `  claim_idle_ms: 2000\n  stale_after_seconds: 3600\n  request_interval_seconds: 2\n`,
    });
    const p = pipeline;
    p.startDaemon('depth');
    const kinesis = createKinesisClient({
      region: p.config.aws.region,
      endpoint: p.config.aws.kinesis.endpoint,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    const depthStream = p.config.aws.kinesis.streams.depth;
    const handedOut: DepthDiffStreamEvent[] = [];
    let dropped: DepthDiffStreamEvent | undefined;

    /** Hands out `count` events; publishes the depth stream's (all but the diff at `dropAt`, when given). */
    const handOutAndPublish = async (count: number, dropAt?: number): Promise<PublishSummary> => {
      const publishable: SimulatedEvent[] = [];
      let diffs = 0;
      for (let i = 0; i < count; i++) {
        const ev = exchange.next();
        if (ev.stream !== 'depth') continue; // only the depth daemon runs
        if (ev.message.message === 'DepthDiffStreamEvent') {
          handedOut.push(ev.message);
          if (diffs++ === dropAt) {
            dropped = ev.message;
            continue; // the lost record
          }
        }
        publishable.push(ev);
      }
      return publishEvents(publishable, {
        streams: p.config.aws.kinesis.streams,
        putRecords: putRecordsWith(kinesis),
        recordMode: 'kpl',
      });
    };

    const waitForCheckpoint = async (summary: PublishSummary, timeoutMs: number): Promise<void> => {
      const dynamo = createDynamoClient(p.config.aws.region, p.config.aws.dynamodb.endpoint);
      try {
        const missing = async () => {
          const leases = await readLeases(dynamo, applicationName(p.config, 'depth')).catch(() => []);
          const out: string[] = [];
          for (const [shardId, report] of Object.entries(summary.shards[depthStream] ?? {})) {
            const lease = leases.find((l) => l.shardId === shardId);
            if (lease?.checkpoint !== report.lastSequenceNumber)
              out.push(`${shardId}: ${lease?.checkpoint ?? 'no lease'}`);
          }
          return out;
        };
        await waitUntil(
          async () => (await missing()).length === 0,
          timeoutMs,
          'the depth checkpoint at the last published record',
          async () => (await missing()).join('; '),
        );
      } finally {
        dynamo.destroy();
      }
    };

    const bookState = () => p.redis.hgetall(keys.bookState(S));
    const explain = async () =>
      `state ${JSON.stringify(await bookState())}; stats ${JSON.stringify(
        await p.redis.hgetall(keys.reanchorStats(S)),
      )}; sidecar stderr: ${(sidecar?.stderr() ?? '').slice(-2000)}`;
    /** In sync, no re-anchor running or queued: every request delivered to the group and acknowledged. */
    const quiet = async (minReanchors: number): Promise<boolean> => {
      const state = await bookState();
      if (state.status !== 'in_sync' || Number(state.reanchors ?? 0) < minReanchors) return false;
      if ((await p.redis.exists(keys.reanchorFlag(S), keys.reanchorPending(S))) !== 0) return false;
      const pending = (await p.redis.xpending(keys.reanchorRequests(), REANCHOR_GROUP)) as [number];
      if (pending[0] !== 0) return false;
      const last = await p.redis.xrevrange(keys.reanchorRequests(), '+', '-', 'COUNT', 1);
      const groups = (await p.redis.xinfo('GROUPS', keys.reanchorRequests())) as string[][];
      const group = groups.map(fieldsOf).find((g) => g.name === REANCHOR_GROUP);
      return group?.['last-delivered-id'] === last[0]?.[0];
    };
    /** quiet() twice, 1.5 s apart (the monitor checks every second). */
    const settled = async (minReanchors: number): Promise<boolean> => {
      if (!(await quiet(minReanchors))) return false;
      await new Promise((r) => setTimeout(r, 1500));
      return quiet(minReanchors);
    };

    // 1-2. The first ~1000 events, before any re-anchor: the book is out of sync, never anchored.
    const first = await handOutAndPublish(1000);
    await waitForCheckpoint(first, 150_000);
    const pipelineReady = Date.now();
    expect(await bookState()).to.include({ status: 'out_of_sync', reason: 'no_snapshot' });

    // 3. The real sidecar: its monitor requests the first anchor once it holds the feature lease.
    sidecar = spawnSidecar(p.configFile, 'sc-1');
    await waitUntil(() => settled(1), 60_000, 'the first anchor', explain);
    const firstAnchor = Date.now();
    const reanchorsBefore = Number((await bookState()).reanchors);

    // 4. The next ~1000 events with one depth diff lost: the processor sees the gap and requests a re-anchor.
    const second = await handOutAndPublish(1000, 60);
    expect(dropped, 'a diff was dropped').to.not.equal(undefined);
    await waitForCheckpoint(second, 120_000);
    await waitUntil(
      async () =>
        (await p.redis.xrange(keys.reanchorRequests(), '-', '+'))
          .map(([, f]) => fieldsOf(f))
          .some((f) => f.symbol === S && f.source === 'processor' && f.reason === 'depth_gap'),
      30_000,
      'the processor request (source=processor, reason=depth_gap)',
      explain,
    );
    await waitUntil(() => settled(reanchorsBefore + 1), 60_000, 'the re-anchor after the gap', explain);
    const secondAnchor = Date.now();

    // ~500 more events on the re-anchored book.
    const third = await handOutAndPublish(500);
    await waitForCheckpoint(third, 120_000);
    await waitUntil(() => settled(2), 30_000, 'in sync and quiet at the end', explain);
    const done = Date.now();

    // 5. The true book: the initial snapshot, then every diff handed out (the lost one included), in order.
    const ref = new ReferenceBook({ levels: 10, bufferMax: 100_000 });
    expect(
      ref.anchor({
        lastUpdateId: initial.lastUpdateId,
        priceExponent: exchange.simulator.priceExponent,
        qtyExponent: exchange.simulator.qtyExponent,
        bids: initial.bids,
        asks: initial.asks,
        timeUs: 1_765_000_000_000_000n,
      }).code,
    ).to.equal(1);
    const applied = ref.applyDepthBatch(handedOut);
    expect(applied.gap || applied.crossed, 'the handed-out diffs are contiguous').to.equal(false);
    expect(ref.status).to.equal('in_sync');
    const lastU = handedOut[handedOut.length - 1]!.lastBookUpdateId;
    expect(ref.bookId).to.equal(lastU);

    const state = await bookState();
    expect(state.status).to.equal('in_sync');
    expect(state.book_update_id).to.equal(lastU.toString());
    expect(Number(state.reanchors)).to.be.at.least(2);
    expect(Number(state.gaps), 'the lost diff was seen as a gap').to.be.at.least(1);
    expect(sorted(Object.entries(await p.redis.hgetall(keys.bookLevels(S, 'bids'))))).to.deep.equal(
      sorted(ref.bids),
    );
    expect(sorted(Object.entries(await p.redis.hgetall(keys.bookLevels(S, 'asks'))))).to.deep.equal(
      sorted(ref.asks),
    );
    const pending = (await p.redis.xpending(keys.reanchorRequests(), REANCHOR_GROUP)) as [number];
    expect(pending[0]).to.equal(0);
    const stats = await p.redis.hgetall(keys.reanchorStats(S));
    expect(Number(stats.swapped)).to.be.at.least(2);

    const requests = (await p.redis.xrange(keys.reanchorRequests(), '-', '+')).map(([, f]) => fieldsOf(f));
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    process.stdout.write(
      `      reanchor-e2e: ${handedOut.length} diffs handed out (1 lost), ${state.reanchors} re-anchors, ` +
        `${requests.length} requests (${requests.map((r) => `${r.source}:${r.reason}`).join(', ')}); ` +
        `pipeline + first batch checkpointed ${s(pipelineReady - started)}, first anchor after ` +
        `${s(firstAnchor - pipelineReady)}, gap re-anchored ${s(secondAnchor - firstAnchor)} after the first, ` +
        `total ${s(done - started)}\n`,
    );
  });
});
