import { expect } from 'chai';
import sinon from 'sinon';
import { ShardProcessor } from '../../../src/kcl/shard-processor';
import type {
  BatchWriter,
  CheckpointFn,
  InputRecord,
  ShardProcessorOptions,
} from '../../../src/kcl/shard-processor';
import { silentLogger } from '../../../src/logging/logger';
import { encodeFrames } from '../../../src/sbe/encoder';
import type { BestBidAskStreamEvent, TradesStreamEvent } from '../../../src/sbe/messages';
import type { SymbolEvents } from '../../../src/state/batch';
import type { DeadLetter, WriteResult } from '../../../src/state/writer';

const RESULT: WriteResult = { symbols: [], deadLettersAdded: 1, contained: [], containedDeadLetters: [] };
const SHARD = 'shardId-000000000007';

function trade(symbol: string, id: bigint, priceMantissa: bigint): TradesStreamEvent {
  return {
    message: 'TradesStreamEvent',
    eventTime: 1_700_000_000_000_100n,
    transactTime: 1_700_000_000_000_000n,
    priceExponent: -2,
    qtyExponent: -5,
    trades: [{ id, priceMantissa, qtyMantissa: 10n, isBuyerMaker: true, isBestMatch: true }],
    symbol,
  };
}

function bba(symbol: string, bookUpdateId: bigint): BestBidAskStreamEvent {
  return {
    message: 'BestBidAskStreamEvent',
    eventTime: 1_700_000_000_000_200n,
    bookUpdateId,
    priceExponent: -2,
    qtyExponent: -5,
    bidPriceMantissa: 6_000_000n,
    bidQtyMantissa: 1n,
    askPriceMantissa: 6_000_001n,
    askQtyMantissa: 2n,
    symbol,
  };
}

function record(sequenceNumber: string, data: Buffer, extra: Partial<InputRecord> = {}): InputRecord {
  return { data: data.toString('base64'), partitionKey: `pk-${sequenceNumber}`, sequenceNumber, ...extra };
}

/** A promise with its resolve/reject exposed, to control when a fake write finishes. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets pending promise callbacks run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}

interface Harness {
  processor: ShardProcessor;
  write: sinon.SinonStub<[Iterable<SymbolEvents>, readonly DeadLetter[]], Promise<WriteResult>>;
  checkpoint: sinon.SinonStub<[string | null, number?], Promise<string | null>>;
  sleep: sinon.SinonStub<[number], Promise<void>>;
  onBatch: sinon.SinonSpy;
}

function harness(overrides: Partial<ShardProcessorOptions> = {}): Harness {
  const write = sinon
    .stub<[Iterable<SymbolEvents>, readonly DeadLetter[]], Promise<WriteResult>>()
    .resolves(RESULT);
  const writer: BatchWriter = { write };
  const checkpoint = sinon.stub<[string | null, number?], Promise<string | null>>().resolves(null);
  const sleep = sinon.stub<[number], Promise<void>>().resolves();
  const onBatch = sinon.spy();
  const processor = new ShardProcessor({
    stream: 'market-sbe-trade',
    writer,
    writeWithRetry: (w) => w(),
    logger: silentLogger(),
    sleep,
    onBatch,
    ...overrides,
  });
  processor.initialize(SHARD, 'TRIM_HORIZON');
  return { processor, write, checkpoint, sleep, onBatch };
}

const checkpointFn = (h: Harness): CheckpointFn => h.checkpoint;

describe('kcl/ShardProcessor', () => {
  describe('poison records', () => {
    it('become dead letters with code, sequence and subsequence; the good records of the batch are still written', async () => {
      const h = harness();
      const good1 = encodeFrames([
        trade('BTCUSDT', 10n, 6_000_000n),
        trade('BTCUSDT', 12n, 6_000_200n),
        bba('ETHUSDT', 5n),
      ]);
      const garbage = Buffer.from('not an sbe frame at all');
      const truncated = good1.subarray(0, 5);
      const good2 = encodeFrames([trade('BTCUSDT', 11n, 6_000_100n)]);
      const records = [
        record('100', good1),
        record('101', garbage, { subSequenceNumber: 3, approximateArrivalTimestamp: 1_700_000_000_123 }),
        record('102', truncated),
        record('103', good2),
      ];
      const report = await h.processor.processRecords(records, 250, checkpointFn(h));

      expect(h.write.callCount).to.equal(1);
      const [batchesArg, letters] = h.write.firstCall.args;
      const batches = [...batchesArg];
      expect(batches.map((b) => b.symbol)).to.deep.equal(['BTCUSDT', 'ETHUSDT']);
      // Every decoded event reaches the writer, grouped by symbol, in arrival order.
      expect(batches[0]!.trades.flatMap((t) => t.trades.map((x) => x.id))).to.deep.equal([10n, 12n, 11n]);
      expect(batches[0]!.bestBidAsks).to.have.length(0);
      expect(batches[1]!.bestBidAsks.map((b) => b.bookUpdateId)).to.deep.equal([5n]);

      expect(letters).to.have.length(2);
      const first = letters[0]!;
      expect(first).to.deep.include({
        stream: 'market-sbe-trade',
        shardId: SHARD,
        sequenceNumber: '101',
        subSequenceNumber: 3,
        partitionKey: 'pk-101',
        errorCode: 'SCHEMA_MISMATCH',
        dataBase64: garbage.toString('base64'),
        approximateArrivalTimestamp: 1_700_000_000_123,
      });
      expect(first.error).to.match(/schema/);
      expect(letters[1]).to.deep.include({
        sequenceNumber: '102',
        subSequenceNumber: 0,
        errorCode: 'TRUNCATED',
        approximateArrivalTimestamp: undefined,
      });

      expect(report).to.deep.include({
        shardId: SHARD,
        records: 4,
        frames: 4,
        deadLetters: 2,
        millisBehindLatest: 250,
        result: RESULT,
        checkpointed: '103',
      });
      expect(h.onBatch.calledOnceWithExactly(report)).to.equal(true);
      expect(h.checkpoint.args).to.deep.equal([['103', 0]]);
    });

    it('an unexpected (non-SBE) decoder error is dead-lettered as UNEXPECTED', async () => {
      const h = harness({
        walk: () => {
          throw new TypeError('boom');
        },
      });
      await h.processor.processRecords([record('7', Buffer.from([1]))], undefined, checkpointFn(h));
      const letters = h.write.firstCall.args[1];
      expect(letters.map((l) => [l.sequenceNumber, l.errorCode, l.error])).to.deep.equal([
        ['7', 'UNEXPECTED', 'boom'],
      ]);
      expect([...h.write.firstCall.args[0]]).to.deep.equal([]);
    });

    it('a batch of only poison records still writes its dead letters and checkpoints', async () => {
      const h = harness();
      await h.processor.processRecords(
        [record('1', Buffer.alloc(0)), record('2', Buffer.from([0xff]))],
        0,
        checkpointFn(h),
      );
      expect(h.write.firstCall.args[1].map((l) => l.errorCode)).to.deep.equal(['EMPTY', 'TRUNCATED']);
      expect(h.checkpoint.args).to.deep.equal([['2', 0]]);
    });
  });

  describe('frames, validation and the symbol policy', () => {
    const NOW_MS = 1_700_000_010_000;

    it('a bad frame of a record is dead-lettered alone when its extent is known; the other frames are written', async () => {
      const h = harness({ nowMs: () => NOW_MS });
      const good = encodeFrames([trade('BTCUSDT', 1n, 6_000_000n)]);
      const bad = encodeFrames([trade('BTCUSDT', 2n, 6_000_000n)]);
      bad[bad.length - 7 - 1 - 1] = 7; // isBuyerMaker of the only trade (the symbol BTCUSDT follows it)
      const tail = encodeFrames([trade('BTCUSDT', 3n, 6_000_000n)]);
      const report = await h.processor.processRecords(
        [record('10', Buffer.concat([good, bad, tail]))],
        0,
        checkpointFn(h),
      );
      const [groups, letters] = h.write.firstCall.args;
      expect([...groups][0]!.trades.flatMap((t) => t.trades.map((x) => x.id))).to.deep.equal([1n, 3n]);
      expect(letters.map((l) => [l.frameIndex, l.errorCode, l.dataBase64])).to.deep.equal([
        [1, 'INVALID_ENUM', bad.toString('base64')],
      ]);
      expect(report.frames).to.equal(2);
      expect(report.deadLetterCodes).to.deep.equal({ INVALID_ENUM: 1 });
    });

    it('a frame whose lengths cannot be trusted takes the rest of its record; the frames before it are written', async () => {
      const h = harness({ nowMs: () => NOW_MS });
      const good = encodeFrames([trade('BTCUSDT', 1n, 6_000_000n)]);
      const rest = Buffer.concat([Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), good]);
      await h.processor.processRecords([record('11', Buffer.concat([good, rest]))], 0, checkpointFn(h));
      const [groups, letters] = h.write.firstCall.args;
      expect([...groups][0]!.trades).to.have.length(1);
      expect(letters.map((l) => [l.frameIndex, l.errorCode, l.dataBase64])).to.deep.equal([
        [1, 'SCHEMA_MISMATCH', rest.toString('base64')],
      ]);
    });

    it('impossible values are dead-lettered under their code with the symbol; valid events around them are written', async () => {
      const h = harness({ nowMs: () => NOW_MS });
      const negativeId = trade('BTCUSDT', -5n, 6_000_000n);
      const future = { ...bba('BTCUSDT', 9n), eventTime: BigInt(NOW_MS + 3_600_000) * 1000n };
      const negativeUpdate = bba('BTCUSDT', -1n);
      const report = await h.processor.processRecords(
        [
          record('20', encodeFrames([trade('BTCUSDT', 1n, 6_000_000n), negativeId])),
          record('21', encodeFrames([future, bba('ETHUSDT', 4n)])),
          record('22', encodeFrames([negativeUpdate])),
        ],
        0,
        checkpointFn(h),
      );
      const [groups, letters] = h.write.firstCall.args;
      const list = [...groups];
      expect(list.map((g) => g.symbol)).to.deep.equal(['BTCUSDT', 'ETHUSDT']);
      expect(list[0]!.trades).to.have.length(1);
      expect(list[0]!.bestBidAsks).to.have.length(0);
      expect(letters.map((l) => [l.sequenceNumber, l.frameIndex, l.errorCode, l.symbol])).to.deep.equal([
        ['20', 1, 'BAD_TRADE_ID', 'BTCUSDT'],
        ['21', 0, 'FUTURE_TIME', 'BTCUSDT'],
        ['22', 0, 'BAD_UPDATE_ID', 'BTCUSDT'],
      ]);
      expect(letters[1]!.error).to.match(/eventTime: .* ahead of the processor's clock/);
      expect(report.deadLetterCodes).to.deep.equal({ BAD_TRADE_ID: 1, FUTURE_TIME: 1, BAD_UPDATE_ID: 1 });
      expect(report.checkpointed).to.equal('22');
    });

    it('the skew is configurable: an event 2 s ahead passes with the default 5 s and fails with 1 s', async () => {
      const ahead = { ...bba('BTCUSDT', 9n), eventTime: BigInt(NOW_MS + 2000) * 1000n };
      const lenient = harness({ nowMs: () => NOW_MS });
      await lenient.processor.processRecords([record('1', encodeFrames([ahead]))], 0, checkpointFn(lenient));
      expect(lenient.write.firstCall.args[1]).to.have.length(0);
      const strict = harness({ nowMs: () => NOW_MS, maxFutureSkewMs: 1000 });
      await strict.processor.processRecords([record('1', encodeFrames([ahead]))], 0, checkpointFn(strict));
      expect(strict.write.firstCall.args[1].map((l) => l.errorCode)).to.deep.equal(['FUTURE_TIME']);
    });

    it('unlisted symbols: skipped and counted (skip), or written (apply)', async () => {
      const records = [
        record('1', encodeFrames([bba('BTCUSDT', 1n), bba('DOGEUSDT', 2n), bba('DOGEUSDT', 3n)])),
      ];
      const skip = harness({
        nowMs: () => NOW_MS,
        symbols: { listed: new Set(['BTCUSDT']), unlisted: 'skip' },
      });
      const skipped = await skip.processor.processRecords(records, 0, checkpointFn(skip));
      expect([...skip.write.firstCall.args[0]].map((g) => g.symbol)).to.deep.equal(['BTCUSDT']);
      expect(skipped.unlistedSymbols).to.deep.equal({ DOGEUSDT: 2 });
      expect(skipped.unlistedAction).to.equal('skipped');
      expect(skipped.checkpointed).to.equal('1');
      const apply = harness({
        nowMs: () => NOW_MS,
        symbols: { listed: new Set(['BTCUSDT']), unlisted: 'apply' },
      });
      const applied = await apply.processor.processRecords(records, 0, checkpointFn(apply));
      expect([...apply.write.firstCall.args[0]].map((g) => g.symbol)).to.deep.equal(['BTCUSDT', 'DOGEUSDT']);
      expect(applied.unlistedSymbols).to.deep.equal({ DOGEUSDT: 2 });
      expect(applied.unlistedAction).to.equal('applied');
    });

    it('every event handed to the writer carries its origin (for a contained failure to dead-letter it)', async () => {
      const h = harness({ nowMs: () => NOW_MS });
      const frames = encodeFrames([bba('BTCUSDT', 1n), bba('BTCUSDT', 2n)]);
      await h.processor.processRecords([record('30', frames, { subSequenceNumber: 2 })], 0, checkpointFn(h));
      const group = [...h.write.firstCall.args[0]][0]!;
      expect(
        group.origins.bestBidAsks.map((o) => [o.sequenceNumber, o.subSequenceNumber, o.frameIndex]),
      ).to.deep.equal([
        ['30', 2, 0],
        ['30', 2, 1],
      ]);
      expect(group.origins.bestBidAsks[1]!.frameBase64()).to.equal(
        encodeFrames([bba('BTCUSDT', 2n)]).toString('base64'),
      );
    });

    it('contained failures count as dead letters of the batch under their codes', async () => {
      const h = harness({ nowMs: () => NOW_MS });
      const letter = {
        stream: 'market-sbe-trade',
        shardId: SHARD,
        sequenceNumber: '40',
        subSequenceNumber: 0,
        frameIndex: 0,
        partitionKey: 'pk',
        symbol: 'BTCUSDT',
        errorCode: 'SCRIPT_ERROR',
        error: 'bestBidAsks of BTCUSDT: WRONGTYPE',
        dataBase64: '',
        approximateArrivalTimestamp: undefined,
      };
      h.write.resolves({
        symbols: [],
        deadLettersAdded: 1,
        contained: [
          { symbol: 'BTCUSDT', kind: 'bestBidAsks', code: 'SCRIPT_ERROR', error: letter.error, events: 1 },
        ],
        containedDeadLetters: [letter],
      });
      const report = await h.processor.processRecords(
        [record('40', encodeFrames([bba('BTCUSDT', 1n)]))],
        0,
        checkpointFn(h),
      );
      expect(report.deadLetterCodes).to.deep.equal({ SCRIPT_ERROR: 1 });
      expect(report.eventsBySymbol).to.deep.equal({});
      expect(report.checkpointed).to.equal('40');
    });
  });

  describe('checkpointing', () => {
    it('happens only after the write resolved, and names the last record of the batch', async () => {
      const h = harness();
      const pending = deferred<WriteResult>();
      h.write.returns(pending.promise);
      const records = [
        record(
          '49590338271490256608559692538361571095921575989136588898',
          encodeFrames([trade('BTCUSDT', 1n, 1n)]),
        ),
        record(
          '49590338271490256608559692538361571095921575989136588899',
          encodeFrames([trade('BTCUSDT', 2n, 1n)]),
        ),
      ];
      const done = h.processor.processRecords(records, 0, checkpointFn(h));
      await flush();
      expect(h.write.callCount).to.equal(1);
      expect(h.checkpoint.called, 'no checkpoint while Redis has not acknowledged').to.equal(false);
      pending.resolve(RESULT);
      const report = await done;
      expect(h.checkpoint.args).to.deep.equal([
        ['49590338271490256608559692538361571095921575989136588899', 0],
      ]);
      expect(h.checkpoint.calledAfter(h.write)).to.equal(true);
      expect(report.checkpointed).to.equal('49590338271490256608559692538361571095921575989136588899');
    });

    it('the write goes through writeWithRetry, and its result is what gets checkpointed after', async () => {
      const attempts: string[] = [];
      const h = harness({
        writeWithRetry: async (w) => {
          attempts.push('try');
          try {
            return await w();
          } catch {
            attempts.push('retry');
            return w();
          }
        },
      });
      h.write.onFirstCall().rejects(new Error('Connection is closed.'));
      h.write.onSecondCall().resolves(RESULT);
      const report = await h.processor.processRecords(
        [record('5', encodeFrames([bba('BTCUSDT', 1n)]))],
        0,
        checkpointFn(h),
      );
      expect(attempts).to.deep.equal(['try', 'retry']);
      expect(h.write.callCount).to.equal(2);
      expect(report.checkpointed).to.equal('5');
      expect(h.checkpoint.calledOnceWithExactly('5', 0)).to.equal(true);
    });

    it('a write that rejects: no checkpoint, the promise rejects with that error, no report', async () => {
      const h = harness();
      const failure = new Error('Redis update failed after 6 attempt(s): Connection is closed.');
      h.write.rejects(failure);
      let caught: unknown;
      try {
        await h.processor.processRecords(
          [record('9', encodeFrames([trade('BTCUSDT', 1n, 1n)]))],
          0,
          checkpointFn(h),
        );
      } catch (err) {
        caught = err;
      }
      expect(caught).to.equal(failure);
      expect(h.checkpoint.called).to.equal(false);
      expect(h.onBatch.called).to.equal(false);
    });

    it('an empty batch writes nothing of substance and does not checkpoint', async () => {
      const h = harness();
      const report = await h.processor.processRecords([], 0, checkpointFn(h));
      expect(h.checkpoint.called).to.equal(false);
      expect(report.checkpointed).to.equal(undefined);
      expect([...h.write.firstCall.args[0]]).to.deep.equal([]);
      expect(h.write.firstCall.args[1]).to.deep.equal([]);
    });

    it('ShutdownException: no retry, and later batches are written but not checkpointed', async () => {
      const h = harness();
      h.checkpoint.resolves('ShutdownException');
      const first = await h.processor.processRecords(
        [record('1', encodeFrames([trade('BTCUSDT', 1n, 1n)]))],
        0,
        checkpointFn(h),
      );
      expect(h.checkpoint.args).to.deep.equal([['1', 0]]);
      expect(first.checkpointed).to.equal(undefined);
      expect(h.sleep.called).to.equal(false);

      h.checkpoint.resetHistory();
      h.checkpoint.resolves(null);
      const second = await h.processor.processRecords(
        [record('2', encodeFrames([trade('BTCUSDT', 2n, 1n)]))],
        0,
        checkpointFn(h),
      );
      expect(h.write.callCount).to.equal(2);
      expect(h.checkpoint.called).to.equal(false);
      expect(second.checkpointed).to.equal(undefined);
    });

    it('ThrottlingException is retried with backoff, then succeeds', async () => {
      const h = harness();
      h.checkpoint.onCall(0).resolves('ThrottlingException');
      h.checkpoint.onCall(1).resolves('InvalidStateException');
      h.checkpoint.onCall(2).resolves(null);
      const report = await h.processor.processRecords(
        [record('77', encodeFrames([trade('BTCUSDT', 1n, 1n)]))],
        0,
        checkpointFn(h),
      );
      expect(h.checkpoint.args).to.deep.equal([
        ['77', 0],
        ['77', 0],
        ['77', 0],
      ]);
      expect(h.sleep.args).to.deep.equal([[100], [200]]);
      expect(report.checkpointed).to.equal('77');
    });

    it('gives up after checkpointRetries, and the next batch checkpoints again', async () => {
      const h = harness({ checkpointRetries: 2 });
      h.checkpoint.resolves('ThrottlingException');
      const first = await h.processor.processRecords(
        [record('1', encodeFrames([trade('BTCUSDT', 1n, 1n)]))],
        0,
        checkpointFn(h),
      );
      expect(h.checkpoint.callCount).to.equal(3);
      expect(h.sleep.args).to.deep.equal([[100], [200]]);
      expect(first.checkpointed).to.equal(undefined);

      h.checkpoint.resetHistory();
      h.checkpoint.resolves(null);
      const second = await h.processor.processRecords(
        [record('2', encodeFrames([trade('BTCUSDT', 2n, 1n)]))],
        0,
        checkpointFn(h),
      );
      expect(h.checkpoint.args).to.deep.equal([['2', 0]]);
      expect(second.checkpointed).to.equal('2');
    });

    it('an unknown checkpoint error is not retried', async () => {
      const h = harness();
      h.checkpoint.resolves('KinesisClientLibIOException');
      const report = await h.processor.processRecords(
        [record('3', encodeFrames([trade('BTCUSDT', 1n, 1n)]))],
        0,
        checkpointFn(h),
      );
      expect(h.checkpoint.callCount).to.equal(1);
      expect(h.sleep.called).to.equal(false);
      expect(report.checkpointed).to.equal(undefined);
    });

    it('after leaseLost no batch checkpoints', async () => {
      const h = harness();
      h.processor.onLeaseLost();
      const report = await h.processor.processRecords(
        [record('4', encodeFrames([trade('BTCUSDT', 1n, 1n)]))],
        0,
        checkpointFn(h),
      );
      expect(h.write.callCount).to.equal(1);
      expect(h.checkpoint.called).to.equal(false);
      expect(report.checkpointed).to.equal(undefined);
    });
  });

  describe('shardEnded', () => {
    it('checkpoints null (SHARD_END)', async () => {
      const h = harness();
      await h.processor.shardEnded(checkpointFn(h));
      expect(h.checkpoint.args).to.deep.equal([[null]]);
      expect(h.write.called).to.equal(false);
    });

    it('retries a throttled SHARD_END checkpoint', async () => {
      const h = harness();
      h.checkpoint.onCall(0).resolves('ThrottlingException');
      h.checkpoint.onCall(1).resolves(null);
      await h.processor.shardEnded(checkpointFn(h));
      expect(h.checkpoint.args).to.deep.equal([[null], [null]]);
      expect(h.sleep.args).to.deep.equal([[100]]);
    });
  });
  describe('shutdownRequested (planned hand-off)', () => {
    it('checkpoints the last stored record with its sub-sequence number, so the next owner redelivers nothing', async () => {
      const h = harness();
      const frames = encodeFrames([bba('BTCUSDT', 1n)]);
      await h.processor.processRecords(
        [record('60', frames, { subSequenceNumber: 0 }), record('60', frames, { subSequenceNumber: 4 })],
        0,
        checkpointFn(h),
      );
      await h.processor.onShutdownRequested(checkpointFn(h));
      expect(h.checkpoint.args).to.deep.equal([
        ['60', 4],
        ['60', 4],
      ]);
    });

    it('checkpoints a stored batch whose own checkpoint failed past its retries', async () => {
      const h = harness({ checkpointRetries: 1 });
      h.checkpoint.onCall(0).resolves('ThrottlingException');
      h.checkpoint.onCall(1).resolves('ThrottlingException');
      const report = await h.processor.processRecords(
        [record('61', encodeFrames([bba('BTCUSDT', 1n)]))],
        0,
        checkpointFn(h),
      );
      expect(report.checkpointed).to.equal(undefined);
      await h.processor.onShutdownRequested(checkpointFn(h));
      expect(h.checkpoint.args).to.deep.equal([
        ['61', 0],
        ['61', 0],
        ['61', 0],
      ]);
    });

    it('sends no checkpoint when no record was delivered, or after the lease was lost', async () => {
      const none = harness();
      await none.processor.onShutdownRequested(checkpointFn(none));
      expect(none.checkpoint.called).to.equal(false);

      const lost = harness();
      await lost.processor.processRecords(
        [record('62', encodeFrames([bba('BTCUSDT', 1n)]))],
        0,
        checkpointFn(lost),
      );
      lost.processor.onLeaseLost();
      await lost.processor.onShutdownRequested(checkpointFn(lost));
      expect(lost.checkpoint.callCount).to.equal(1);
    });
  });
});
