import type kcl from 'aws-kcl';
import type { Logger } from '../logging/logger';
import type { CheckpointFn, ShardProcessor } from './shard-processor';

// Binds a ShardProcessor to aws-kcl's callback API. Guarantees the protocol's hard rules: `done` is called
// exactly once per action (a second call would acknowledge the next action early), and a batch that could
// not be stored is never acknowledged: the child exits instead, so the daemon redelivers from the last
// checkpoint once it or another worker picks the shard up again.

type CheckpointCallback = (err: string | null | undefined, sequenceNumber?: string) => void;

/**
 * The parts of aws-kcl 2.3.x's Checkpointer (lib/kcl/checkpointer.js, kcl_manager.js) that a checkpoint with a
 * sub-sequence number needs: aws-kcl's own checkpoint() sends only the sequence number, although the daemon's
 * checkpoint message takes `subSequenceNumber` too. aws-kcl is pinned to an exact version; a unit test checks
 * these internals against the installed module, and without them the plain checkpoint is sent.
 */
interface CheckpointerInternals {
  _callback: CheckpointCallback | null;
  _kclManager: { _context: unknown; _sendAction(context: unknown, action: object): void };
}

function internalsOf(checkpointer: kcl.Checkpointer): CheckpointerInternals | undefined {
  const candidate = checkpointer as unknown as Partial<CheckpointerInternals>;
  const manager = candidate._kclManager;
  return manager !== undefined && typeof manager._sendAction === 'function' && '_callback' in candidate
    ? (candidate as CheckpointerInternals)
    : undefined;
}

/** Sends `{"action":"checkpoint","sequenceNumber":..,"subSequenceNumber":n}` for a sub-record of an aggregate. */
export function checkpointAt(
  checkpointer: kcl.Checkpointer,
  sequenceNumber: string | null,
  subSequenceNumber: number | undefined,
  callback: CheckpointCallback,
): void {
  const internals = internalsOf(checkpointer);
  if (sequenceNumber === null || !subSequenceNumber || internals === undefined) {
    checkpointer.checkpoint(sequenceNumber, callback);
    return;
  }
  if (internals._callback !== null) {
    callback('Cannot checkpoint while another checkpoint is already in progress.');
    return;
  }
  internals._callback = callback;
  const manager = internals._kclManager;
  manager._sendAction(manager._context, { action: 'checkpoint', sequenceNumber, subSequenceNumber });
}

function checkpointVia(checkpointer: kcl.Checkpointer): CheckpointFn {
  return (sequenceNumber, subSequenceNumber) =>
    new Promise((resolve) => {
      checkpointAt(checkpointer, sequenceNumber, subSequenceNumber, (err) =>
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
    shutdownRequested(input, done) {
      // Checkpoint the last stored record before the status: the next owner then starts right after it.
      run('shutdownRequested', done, () => processor.onShutdownRequested(checkpointVia(input.checkpointer)));
    },
  };
}
