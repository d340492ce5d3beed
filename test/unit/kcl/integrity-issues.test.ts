import { expect } from 'chai';
import sinon from 'sinon';
import { ShardProcessor } from '../../../src/kcl/shard-processor';
import type { InputRecord, IntegrityIssue, ShardProcessorOptions } from '../../../src/kcl/shard-processor';
import { silentLogger } from '../../../src/logging/logger';
import { encodeFrames } from '../../../src/sbe/encoder';
import type { TradesStreamEvent } from '../../../src/sbe/messages';
import type { DepthBatchResult } from '../../../src/state/book';
import type { SymbolEvents } from '../../../src/state/batch';
import type { TradeBatchResult, TradeGap } from '../../../src/state/trades';
import type { DeadLetter, SymbolWriteResult, WriteResult } from '../../../src/state/writer';

// ShardProcessor hands trade-id gaps, depth gaps and crossed books reported by the writer to onIntegrityIssue
// (which queues a re-anchor request), after the batch was stored; a failing callback never fails the batch.

const SHARD = 'shardId-000000000003';

function trade(symbol: string, id: bigint): TradesStreamEvent {
  return {
    message: 'TradesStreamEvent',
    eventTime: 1_700_000_000_000_100n,
    transactTime: 1_700_000_000_000_000n,
    priceExponent: -2,
    qtyExponent: -5,
    trades: [{ id, priceMantissa: 6_000_000n, qtyMantissa: 10n, isBuyerMaker: true, isBestMatch: true }],
    symbol,
  };
}

function record(sequenceNumber: string): InputRecord {
  const data = encodeFrames([trade('BTCUSDT', BigInt(sequenceNumber))]);
  return { data: data.toString('base64'), partitionKey: 'BTCUSDT', sequenceNumber };
}

function trades(gaps: readonly TradeGap[] = []): TradeBatchResult {
  return { applied: 1, duplicates: 0, gaps, eventTimeUs: 1n, lastTradeId: 1n };
}

function depth(overrides: Partial<DepthBatchResult> = {}): DepthBatchResult {
  return {
    applied: 1,
    ignored: 0,
    buffered: 0,
    kept: 0,
    gap: false,
    crossed: false,
    overflow: 0,
    status: 'in_sync',
    reason: '',
    bookUpdateId: 100n,
    bufferLength: 0,
    levelsSource: 'book',
    depth20Applied: false,
    bestWritten: true,
    calls: 1,
    resent: 0,
    fullFormNext: false,
    ...overrides,
  };
}

function symbolResult(symbol: string, overrides: Partial<SymbolWriteResult> = {}): SymbolWriteResult {
  return { symbol, trades: undefined, bestBidAsk: undefined, depth: undefined, ...overrides };
}

function result(...symbols: SymbolWriteResult[]): WriteResult {
  return { symbols, deadLettersAdded: 0, contained: [], containedDeadLetters: [] };
}

interface Harness {
  processor: ShardProcessor;
  write: sinon.SinonStub<[Iterable<SymbolEvents>, readonly DeadLetter[]], Promise<WriteResult>>;
  checkpoint: sinon.SinonStub<[string | null, number?], Promise<string | null>>;
  onIntegrityIssue: sinon.SinonStub<[IntegrityIssue], void>;
  logger: ReturnType<typeof silentLogger>;
}

function harness(writeResult: WriteResult, overrides: Partial<ShardProcessorOptions> = {}): Harness {
  const write = sinon
    .stub<[Iterable<SymbolEvents>, readonly DeadLetter[]], Promise<WriteResult>>()
    .resolves(writeResult);
  const checkpoint = sinon.stub<[string | null, number?], Promise<string | null>>().resolves(null);
  const onIntegrityIssue = sinon.stub<[IntegrityIssue], void>();
  const logger = silentLogger();
  const processor = new ShardProcessor({
    stream: 'market-sbe-depth',
    writer: { write },
    writeWithRetry: (w) => w(),
    logger,
    sleep: () => Promise.resolve(),
    onIntegrityIssue,
    ...overrides,
  });
  processor.initialize(SHARD, 'LATEST');
  return { processor, write, checkpoint, onIntegrityIssue, logger };
}

async function processBatch(h: Harness, sequenceNumber = '42') {
  return h.processor.processRecords([record(sequenceNumber)], 0, h.checkpoint);
}

describe('kcl/ShardProcessor integrity issues', () => {
  it('a clean batch reports nothing', async () => {
    const h = harness(
      result(
        symbolResult('BTCUSDT', { trades: trades(), depth: depth() }),
        symbolResult('ETHUSDT', { bestBidAsk: { applied: true, bestWritten: true } }),
      ),
    );
    const report = await processBatch(h);
    expect(h.onIntegrityIssue.called).to.equal(false);
    expect(report.checkpointed).to.equal('42');
  });

  it('a trade-id gap: trade_gap with the first missing range', async () => {
    const h = harness(
      result(
        symbolResult('BTCUSDT', {
          trades: trades([
            { from: 11n, to: 14n },
            { from: 20n, to: 20n },
          ]),
        }),
      ),
    );
    await processBatch(h);
    expect(h.onIntegrityIssue.args).to.deep.equal([
      [{ symbol: 'BTCUSDT', reason: 'trade_gap', detail: 'trade ids 11..14 missing' }],
    ]);
  });

  it('a depth gap: depth_gap with the book id', async () => {
    const h = harness(
      result(
        symbolResult('ETHUSDT', {
          depth: depth({ gap: true, status: 'out_of_sync', reason: 'gap', bookUpdateId: 987_654_321_012n }),
        }),
      ),
    );
    await processBatch(h);
    expect(h.onIntegrityIssue.args).to.deep.equal([
      [{ symbol: 'ETHUSDT', reason: 'depth_gap', detail: 'book id 987654321012' }],
    ]);
  });

  it('a crossed book: crossed with the book id', async () => {
    const h = harness(
      result(
        symbolResult('BTCUSDT', {
          depth: depth({ crossed: true, status: 'out_of_sync', reason: 'crossed' }),
        }),
      ),
    );
    await processBatch(h);
    expect(h.onIntegrityIssue.args).to.deep.equal([
      [{ symbol: 'BTCUSDT', reason: 'crossed', detail: 'book id 100' }],
    ]);
  });

  it('a depth issue before the first anchor shows an empty book id', async () => {
    const h = harness(
      result(symbolResult('BTCUSDT', { depth: depth({ gap: true, bookUpdateId: undefined }) })),
    );
    await processBatch(h);
    expect(h.onIntegrityIssue.args).to.deep.equal([
      [{ symbol: 'BTCUSDT', reason: 'depth_gap', detail: 'book id ' }],
    ]);
  });

  it('every issue of every symbol is reported, in symbol order, trade gap then depth gap then crossed', async () => {
    const h = harness(
      result(
        symbolResult('BTCUSDT', {
          trades: trades([{ from: 5n, to: 6n }]),
          depth: depth({ gap: true, crossed: true, bookUpdateId: 7n }),
        }),
        symbolResult('ETHUSDT', { trades: trades(), depth: depth() }),
        symbolResult('SOLUSDT', { depth: depth({ crossed: true, bookUpdateId: 9n }) }),
      ),
    );
    await processBatch(h);
    expect(h.onIntegrityIssue.args.map(([issue]) => issue)).to.deep.equal([
      { symbol: 'BTCUSDT', reason: 'trade_gap', detail: 'trade ids 5..6 missing' },
      { symbol: 'BTCUSDT', reason: 'depth_gap', detail: 'book id 7' },
      { symbol: 'BTCUSDT', reason: 'crossed', detail: 'book id 7' },
      { symbol: 'SOLUSDT', reason: 'crossed', detail: 'book id 9' },
    ]);
  });

  it('a diff-buffer overflow alone is not an integrity issue', async () => {
    const h = harness(
      result(
        symbolResult('BTCUSDT', {
          depth: depth({ overflow: 3, status: 'out_of_sync', reason: 'no_snapshot' }),
        }),
        symbolResult('ETHUSDT', { depth: depth({ overflow: 2, status: 'out_of_sync', reason: 'gap' }) }),
      ),
    );
    await processBatch(h);
    expect(h.onIntegrityIssue.called).to.equal(false);
  });

  it('is called after the batch was stored and before the checkpoint', async () => {
    const h = harness(result(symbolResult('BTCUSDT', { depth: depth({ gap: true }) })));
    await processBatch(h);
    expect(h.onIntegrityIssue.calledOnce).to.equal(true);
    expect(h.onIntegrityIssue.calledAfter(h.write)).to.equal(true);
    expect(h.onIntegrityIssue.calledBefore(h.checkpoint)).to.equal(true);
  });

  it('nothing is reported when the write rejects', async () => {
    const h = harness(result());
    h.write.rejects(new Error('Connection is closed.'));
    let caught: unknown;
    try {
      await processBatch(h);
    } catch (err) {
      caught = err;
    }
    expect((caught as Error).message).to.equal('Connection is closed.');
    expect(h.onIntegrityIssue.called).to.equal(false);
    expect(h.checkpoint.called).to.equal(false);
  });

  it('without onIntegrityIssue the batch is processed and checkpointed as usual', async () => {
    const h = harness(result(symbolResult('BTCUSDT', { depth: depth({ gap: true, crossed: true }) })), {
      onIntegrityIssue: undefined,
    });
    const report = await processBatch(h, '77');
    expect(report.checkpointed).to.equal('77');
  });

  it('a throwing onIntegrityIssue does not fail the batch: it is checkpointed, the error logged, later issues still reported', async () => {
    const h = harness(
      result(
        symbolResult('BTCUSDT', { trades: trades([{ from: 1n, to: 2n }]), depth: depth({ crossed: true }) }),
        symbolResult('ETHUSDT', { depth: depth({ gap: true, bookUpdateId: 5n }) }),
      ),
    );
    h.onIntegrityIssue.throws(new Error('redis down'));
    const error = sinon.spy(h.logger, 'error');
    const report = await h.processor.processRecords([record('100'), record('101')], 5, h.checkpoint);

    expect(report.checkpointed).to.equal('101');
    expect(h.checkpoint.args).to.deep.equal([['101', 0]]);
    expect(h.onIntegrityIssue.callCount).to.equal(3);
    expect(h.onIntegrityIssue.args.map(([issue]) => issue.reason)).to.deep.equal([
      'trade_gap',
      'crossed',
      'depth_gap',
    ]);
    expect(error.callCount).to.equal(3);
    const [message, meta] = error.firstCall.args as unknown[];
    expect(message).to.equal('could not report an integrity issue');
    expect(meta).to.deep.equal({
      symbol: 'BTCUSDT',
      reason: 'trade_gap',
      detail: 'trade ids 1..2 missing',
      error: 'redis down',
    });
  });

  it('a throwing onIntegrityIssue still lets onBatch see the report', async () => {
    const onBatch = sinon.spy();
    const h = harness(result(symbolResult('BTCUSDT', { depth: depth({ gap: true }) })), { onBatch });
    h.onIntegrityIssue.throws(new TypeError('nope'));
    const report = await processBatch(h, '9');
    expect(report.checkpointed).to.equal('9');
    expect(onBatch.calledOnceWithExactly(report)).to.equal(true);
  });

  it('a callback throwing a non-Error (a string) does not fail the batch either', async () => {
    const h = harness(result(symbolResult('BTCUSDT', { depth: depth({ crossed: true }) })));
    h.onIntegrityIssue.callsFake(() => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error
      throw 'plain string';
    });
    const report = await processBatch(h, '12');
    expect(report.checkpointed).to.equal('12');
  });
});
