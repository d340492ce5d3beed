import { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import type { PutRecordsCommandInput, PutRecordsCommandOutput } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';

// Kinesis PutRecords: its limits and a client, shared by the dead-letter re-drive (src/dlq/redrive.ts) and the
// replay tooling's producer (src/replay/producer.ts).

/** PutRecords limits: 500 entries and 5 MiB (data + partition keys) per call. */
export const MAX_RECORDS_PER_CALL = 500;
export const MAX_BYTES_PER_CALL = 5 * 1024 * 1024;

export type PutRecordsFn = (
  input: PutRecordsCommandInput,
) => Promise<Pick<PutRecordsCommandOutput, 'Records' | 'FailedRecordCount'>>;

export interface KinesisTarget {
  readonly region: string;
  /** Absent for real AWS. */
  readonly endpoint?: string | undefined;
  /** Absent: the SDK's default credential chain. */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
}

/**
 * A Kinesis client that works with real AWS and with kinesis-mock's plain port (which needs HTTP/1.1: the SDK's
 * default HTTP/2 handler fails there with ERR_HTTP2_ERROR).
 */
export function createKinesisClient(target: KinesisTarget): KinesisClient {
  return new KinesisClient({
    region: target.region,
    ...(target.endpoint === undefined ? {} : { endpoint: target.endpoint }),
    ...(target.credentials === undefined ? {} : { credentials: target.credentials }),
    // A timeout must fail the call (the SDK default only logs a warning and waits forever).
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 5000,
      requestTimeout: 60000,
      throwOnRequestTimeout: true,
    }),
    maxAttempts: 5,
  });
}

export function putRecordsWith(client: KinesisClient): PutRecordsFn {
  return (input) => client.send(new PutRecordsCommand(input));
}
