import type kcl from 'aws-kcl';
import { expect } from 'chai';
import sinon from 'sinon';
import { toKclRecordProcessor } from '../../../src/kcl/protocol-adapter';
import type { BatchReport, CheckpointFn, ShardProcessor } from '../../../src/kcl/shard-processor';
import { silentLogger } from '../../../src/logging/logger';

/** Lets pending promise callbacks (and a few rounds of them) run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A stand-in for ShardProcessor with every method stubbed. */
function fakeProcessor() {
  const stubs = {
    initialize: sinon.stub<[string, string | undefined], void>(),
    processRecords: sinon.stub<
      [readonly kcl.KinesisRecord[], number | undefined, CheckpointFn],
      Promise<BatchReport>
    >(),
    shardEnded: sinon.stub<[CheckpointFn], Promise<void>>().resolves(),
    onLeaseLost: sinon.stub<[], void>(),
    onShutdownRequested: sinon.stub<[CheckpointFn], Promise<void>>().resolves(),
  };
  return { stubs, processor: stubs as unknown as ShardProcessor };
}

/** A checkpointer that answers each checkpoint with the next reply (an error name or null). */
function fakeCheckpointer(...replies: Array<string | null | undefined>) {
  const calls: Array<string | null> = [];
  const checkpointer = {
    checkpoint(sequenceNumber: string | null, callback: (err: string | null | undefined) => void) {
      calls.push(sequenceNumber);
      callback(replies.shift());
    },
  } as kcl.Checkpointer;
  return { checkpointer, calls };
}

function setup() {
  const { stubs, processor } = fakeProcessor();
  const fatal = sinon.spy();
  const recordProcessor = toKclRecordProcessor(processor, { logger: silentLogger(), fatal });
  return { stubs, fatal, recordProcessor };
}

describe('kcl/protocol-adapter', () => {
  it('initialize: passes shard and sequence, calls done exactly once', async () => {
    const { stubs, fatal, recordProcessor } = setup();
    const done = sinon.spy();
    recordProcessor.initialize(
      { shardId: 'shardId-000000000001', sequenceNumber: 'TRIM_HORIZON', subSequenceNumber: 0 },
      done,
    );
    await flush();
    expect(stubs.initialize.args).to.deep.equal([['shardId-000000000001', 'TRIM_HORIZON']]);
    expect(done.callCount).to.equal(1);
    expect(fatal.called).to.equal(false);
  });

  it('initialize that throws synchronously: fatal, done NOT called', async () => {
    const { stubs, fatal, recordProcessor } = setup();
    const failure = new Error('bad init');
    stubs.initialize.throws(failure);
    const done = sinon.spy();
    recordProcessor.initialize({ shardId: 's' }, done);
    await flush();
    expect(done.called).to.equal(false);
    expect(fatal.callCount).to.equal(1);
    expect(fatal.firstCall.args[0]).to.equal(failure);
  });

  it('processRecords: done only after the batch was stored, exactly once', async () => {
    const { stubs, fatal, recordProcessor } = setup();
    const batch = deferred<BatchReport>();
    stubs.processRecords.returns(batch.promise);
    const records: kcl.KinesisRecord[] = [{ data: 'AA==', partitionKey: 'p', sequenceNumber: '1' }];
    const done = sinon.spy();
    recordProcessor.processRecords(
      { records, millisBehindLatest: 12, checkpointer: fakeCheckpointer().checkpointer },
      done,
    );
    await flush();
    expect(stubs.processRecords.callCount).to.equal(1);
    expect(stubs.processRecords.firstCall.args[0]).to.equal(records);
    expect(stubs.processRecords.firstCall.args[1]).to.equal(12);
    expect(done.called, 'not before the batch resolved').to.equal(false);
    batch.resolve({} as BatchReport);
    await flush();
    expect(done.callCount).to.equal(1);
    await flush();
    expect(done.callCount).to.equal(1);
    expect(fatal.called).to.equal(false);
  });

  it('processRecords that rejects: fatal with the error, done NOT called', async () => {
    const { stubs, fatal, recordProcessor } = setup();
    const failure = new Error('Redis update failed after 6 attempt(s): Connection is closed.');
    stubs.processRecords.rejects(failure);
    const done = sinon.spy();
    recordProcessor.processRecords({ records: [], checkpointer: fakeCheckpointer().checkpointer }, done);
    await flush();
    expect(done.called).to.equal(false);
    expect(fatal.callCount).to.equal(1);
    expect(fatal.firstCall.args[0]).to.equal(failure);
  });

  it('the CheckpointFn handed to the processor goes through the checkpointer and maps replies', async () => {
    const { stubs, recordProcessor } = setup();
    const { checkpointer, calls } = fakeCheckpointer(undefined, null, 'ThrottlingException');
    const replies: Array<string | null> = [];
    stubs.processRecords.callsFake(async (_records, _behind, checkpoint) => {
      replies.push(await checkpoint('10'), await checkpoint('11'), await checkpoint('12'));
      return {} as BatchReport;
    });
    const done = sinon.spy();
    recordProcessor.processRecords({ records: [], checkpointer }, done);
    await flush();
    expect(calls).to.deep.equal(['10', '11', '12']);
    expect(replies).to.deep.equal([null, null, 'ThrottlingException']);
    expect(done.callCount).to.equal(1);
  });

  it('shardEnded: the processor checkpoints through the checkpointer; done once after it', async () => {
    const { stubs, fatal, recordProcessor } = setup();
    const { checkpointer, calls } = fakeCheckpointer(null);
    stubs.shardEnded.callsFake(async (checkpoint) => {
      expect(await checkpoint(null)).to.equal(null);
    });
    const done = sinon.spy();
    recordProcessor.shardEnded({ checkpointer }, done);
    await flush();
    expect(calls).to.deep.equal([null]);
    expect(done.callCount).to.equal(1);
    expect(fatal.called).to.equal(false);
  });

  it('shardEnded that rejects: fatal, done NOT called', async () => {
    const { stubs, fatal, recordProcessor } = setup();
    stubs.shardEnded.rejects(new Error('checkpoint channel broken'));
    const done = sinon.spy();
    recordProcessor.shardEnded({ checkpointer: fakeCheckpointer().checkpointer }, done);
    await flush();
    expect(done.called).to.equal(false);
    expect(fatal.callCount).to.equal(1);
    expect((fatal.firstCall.args[0] as Error).message).to.equal('checkpoint channel broken');
  });

  it('leaseLost and shutdownRequested: processor told, done exactly once each', async () => {
    const { stubs, fatal, recordProcessor } = setup();
    const leaseDone = sinon.spy();
    const shutdownDone = sinon.spy();
    recordProcessor.leaseLost({}, leaseDone);
    recordProcessor.shutdownRequested!({ checkpointer: fakeCheckpointer().checkpointer }, shutdownDone);
    await flush();
    expect(stubs.onLeaseLost.callCount).to.equal(1);
    expect(stubs.onShutdownRequested.callCount).to.equal(1);
    expect(leaseDone.callCount).to.equal(1);
    expect(shutdownDone.callCount).to.equal(1);
    expect(fatal.called).to.equal(false);
  });

  it('leaseLost that throws: fatal, done NOT called', async () => {
    const { stubs, fatal, recordProcessor } = setup();
    stubs.onLeaseLost.throws(new Error('x'));
    const done = sinon.spy();
    recordProcessor.leaseLost({}, done);
    await flush();
    expect(done.called).to.equal(false);
    expect(fatal.callCount).to.equal(1);
  });

  it('each action of a sequence is acknowledged exactly once, in order', async () => {
    const { stubs, recordProcessor } = setup();
    stubs.processRecords.resolves({} as BatchReport);
    const acks: string[] = [];
    recordProcessor.initialize({ shardId: 's' }, () => acks.push('initialize'));
    await flush();
    recordProcessor.processRecords({ records: [], checkpointer: fakeCheckpointer().checkpointer }, () =>
      acks.push('processRecords'),
    );
    await flush();
    recordProcessor.processRecords({ records: [], checkpointer: fakeCheckpointer().checkpointer }, () =>
      acks.push('processRecords'),
    );
    await flush();
    recordProcessor.shardEnded({ checkpointer: fakeCheckpointer(null).checkpointer }, () =>
      acks.push('shardEnded'),
    );
    await flush();
    expect(acks).to.deep.equal(['initialize', 'processRecords', 'processRecords', 'shardEnded']);
  });
  it('shutdownRequested: the processor checkpoints through the input checkpointer before done', async () => {
    const { stubs, fatal, recordProcessor } = setup();
    const gate = deferred<void>();
    stubs.onShutdownRequested.callsFake(async (checkpoint) => {
      await checkpoint('88', 0);
      await gate.promise;
    });
    const { checkpointer, calls } = fakeCheckpointer(null);
    const done = sinon.spy();
    recordProcessor.shutdownRequested!({ checkpointer }, done);
    await flush();
    expect(calls).to.deep.equal(['88']);
    expect(done.called, 'no status before the checkpoint work ended').to.equal(false);
    gate.resolve();
    await flush();
    expect(done.callCount).to.equal(1);
    expect(fatal.called).to.equal(false);
  });
});
