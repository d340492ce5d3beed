import type kcl from 'aws-kcl';
import type { Logger } from '../logging/logger';
import type { CheckpointFn, ShardProcessor } from './shard-processor';

// Binds a ShardProcessor to aws-kcl's callback API. Guarantees the protocol's hard rules: `done` is called
// exactly once per action (a second call would acknowledge the next action early), and a batch that could
// not be stored is never acknowledged: the child exits instead, so the daemon redelivers from the last
// checkpoint once it or another worker picks the shard up again.

function checkpointVia(checkpointer: kcl.Checkpointer): CheckpointFn {
  return (sequenceNumber) =>
    new Promise((resolve) => {
      checkpointer.checkpoint(sequenceNumber, (err) =>
        resolve(err === undefined || err === null ? null : String(err)),
      );
    });
}

function once(done: () => void): () => void {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    done();
  };
}

export interface AdapterHooks {
  readonly logger: Logger;
  /** Called when an action failed in a way that must not be acknowledged (e.g. Redis never acknowledged). */
  readonly fatal: (err: unknown) => void;
}

export function toKclRecordProcessor(processor: ShardProcessor, hooks: AdapterHooks): kcl.RecordProcessor {
  const run = (action: string, done: () => void, work: () => Promise<void> | void): void => {
    const finish = once(done);
    Promise.resolve()
      .then(work)
      .then(finish, (err: unknown) => {
        hooks.logger.error(`${action} failed; exiting without acknowledging it`, {
          error: err instanceof Error ? err.message : String(err),
        });
        hooks.fatal(err);
      });
  };
  return {
    initialize(input, done) {
      run('initialize', done, () => processor.initialize(input.shardId, input.sequenceNumber));
    },
    processRecords(input, done) {
      run('processRecords', done, async () => {
        await processor.processRecords(
          input.records,
          input.millisBehindLatest,
          checkpointVia(input.checkpointer),
        );
      });
    },
    leaseLost(_input, done) {
      run('leaseLost', done, () => processor.onLeaseLost());
    },
    shardEnded(input, done) {
      run('shardEnded', done, () => processor.shardEnded(checkpointVia(input.checkpointer)));
    },
    shutdownRequested(_input, done) {
      // Every stored batch was checkpointed already; acknowledging is all that is left to do.
      run('shutdownRequested', done, () => processor.onShutdownRequested());
    },
  };
}
