// Type declarations for npm `aws-kcl` 2.3.x (the Node.js side of the KCL MultiLang protocol), which ships none.

declare module 'aws-kcl' {
  import type { Readable, Writable } from 'node:stream';

  namespace kcl {
    /** A Kinesis record as the daemon hands it over; `data` stays base64. */
    interface KinesisRecord {
      data: string;
      partitionKey: string;
      sequenceNumber: string;
      /** > 0 for a user record de-aggregated from a KPL aggregated record. */
      subSequenceNumber?: number;
      approximateArrivalTimestamp?: number;
    }

    /** One checkpoint in flight at a time; the callback receives the daemon's error name or null. */
    interface Checkpointer {
      checkpoint(
        sequenceNumber: string | null,
        callback: (err: string | null | undefined, sequenceNumber?: string) => void,
      ): void;
      checkpoint(callback: (err: string | null | undefined, sequenceNumber?: string) => void): void;
    }

    interface InitializeInput {
      shardId: string;
      sequenceNumber?: string;
      subSequenceNumber?: number;
    }

    interface ProcessRecordsInput {
      records: KinesisRecord[];
      millisBehindLatest?: number;
      checkpointer: Checkpointer;
    }

    interface ShardEndedInput {
      checkpointer: Checkpointer;
    }

    type LeaseLostInput = Record<string, never>;

    interface ShutdownRequestedInput {
      checkpointer: Checkpointer;
    }

    /** Each method must call `done` exactly once: a second call acknowledges the next action early. */
    interface RecordProcessor {
      initialize(input: InitializeInput, done: () => void): void;
      processRecords(input: ProcessRecordsInput, done: () => void): void;
      leaseLost(input: LeaseLostInput, done: () => void): void;
      shardEnded(input: ShardEndedInput, done: () => void): void;
      shutdownRequested?(input: ShutdownRequestedInput, done: () => void): void;
    }

    interface KclProcess {
      run(): void;
      cleanup(): void;
    }
  }

  function kcl(
    recordProcessor: kcl.RecordProcessor,
    inputFile?: Readable,
    outputFile?: Writable,
    errorFile?: Writable,
  ): kcl.KclProcess;

  export = kcl;
}
