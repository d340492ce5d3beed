import path from 'node:path';
import { expect } from 'chai';
import { applicationName } from '../../src/config/config';
import { createDynamoClient, readLeases } from '../../src/ops/leases';
import { readTradesCsv } from '../../src/dev/replay/csv';
import { createKinesisClient, publishEvents, putRecordsWith } from '../../src/replay/producer';
import type { TradesStreamEvent } from '../../src/sbe/messages';
import { sharedDir } from '../helpers/paths';
import { startPipeline, waitUntil, type Pipeline } from '../helpers/pipeline';
import { expectWindow, TradeReference } from '../helpers/trade-reference';

// The 9,999 real BTCUSDT trades replayed through the real KCL daemon: the rolling statistics in Redis equal an
// independent reference (test/helpers/trade-reference.ts: exact sums, two-pass std) at 10 sampled points.

const FILE = path.join(sharedDir, 'data/btcusdt-trades/nautilus_tardis_binance-futures_btcusdt_trades.csv');
const CHUNKS = 10;

describe('9,999 real trades through the real KCL daemon', function () {
  this.timeout(300_000);
  let pipeline: Pipeline;

  before(async function () {
    pipeline = await startPipeline({
      shards: { trade: 1, bestbidask: 1, depth: 1 },
      symbols: ['BTCUSDT'],
      label: 'trades',
    });
    pipeline.startDaemon('trade');
  });

  after(async function () {
    if (pipeline) await pipeline.stop();
  });

  it('matches the reference statistics after each of 10 chunks and at the end, with no gaps', async function () {
    const trades: TradesStreamEvent[] = [];
    for await (const event of readTradesCsv(FILE)) trades.push(event);
    expect(trades.flatMap((t) => t.trades)).to.have.length(9999);
    const kinesis = createKinesisClient({
      region: pipeline.config.aws.region,
      endpoint: pipeline.config.aws.kinesis.endpoint,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    const dynamo = createDynamoClient(pipeline.config.aws.region, pipeline.config.aws.dynamodb.endpoint);
    const reference = new TradeReference();
    const chunkSize = Math.ceil(trades.length / CHUNKS);
    try {
      for (let i = 0; i < trades.length; i += chunkSize) {
        const chunk = trades.slice(i, i + chunkSize);
        const summary = await publishEvents(
          chunk.map((message) => ({ stream: 'trade' as const, message })),
          {
            streams: pipeline.config.aws.kinesis.streams,
            putRecords: putRecordsWith(kinesis),
            recordMode: 'kpl',
          },
        );
        const [shardId, shard] = Object.entries(
          summary.shards[pipeline.config.aws.kinesis.streams.trade]!,
        )[0]!;
        await waitUntil(
          async () => {
            const leases = await readLeases(dynamo, applicationName(pipeline.config, 'trade')).catch(
              () => [],
            );
            return leases.find((l) => l.shardId === shardId)?.checkpoint === shard.lastSequenceNumber;
          },
          150_000,
          `checkpoint after chunk ${i / chunkSize + 1}`,
        );
        reference.applyBatch(chunk);
        const context = `after ${Math.min(i + chunkSize, trades.length)} trades`;
        expectWindow(await pipeline.redis.hgetall('tr:BTCUSDT:1s'), reference, 1, undefined, context);
        expectWindow(await pipeline.redis.hgetall('tr:BTCUSDT:5s'), reference, 5, undefined, context);
      }
    } finally {
      dynamo.destroy();
      kinesis.destroy();
    }
    const state = await pipeline.redis.hgetall('tr:BTCUSDT:state');
    expect(state.gap_count ?? '0', 'gap_count (absent until a gap)').to.equal('0');
    expect(state.last_trade_id).to.equal(reference.lastId?.toString());
    const ob = await pipeline.redis.hgetall('ob:BTCUSDT');
    expect(ob.last_trade_id).to.equal(reference.lastId?.toString());
    expect(ob.last_trade_price).to.equal(reference.applied[reference.applied.length - 1]!.priceText);
  });
});
