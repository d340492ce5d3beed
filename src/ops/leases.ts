import { DynamoDBClient, ScanCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';

// Reads a KCL lease table (one per stream/application): who owns each shard and where it checkpointed.

export interface LeaseRow {
  readonly shardId: string;
  readonly owner: string | undefined;
  readonly checkpoint: string | undefined;
  readonly checkpointSubSequenceNumber: number | undefined;
  readonly leaseCounter: number | undefined;
  readonly ownerSwitchesSinceCheckpoint: number | undefined;
}

export function createDynamoClient(region: string, endpoint: string | undefined): DynamoDBClient {
  return new DynamoDBClient({
    region,
    ...(endpoint !== undefined
      ? {
          endpoint,
          requestHandler: new NodeHttpHandler(),
          credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        }
      : {}),
  });
}

function str(value: AttributeValue | undefined): string | undefined {
  return value?.S;
}
function num(value: AttributeValue | undefined): number | undefined {
  return value?.N === undefined ? undefined : Number(value.N);
}

export function toLeaseRow(item: Record<string, AttributeValue>): LeaseRow {
  return {
    shardId: str(item.leaseKey) ?? '?',
    owner: str(item.leaseOwner),
    checkpoint: str(item.checkpoint),
    checkpointSubSequenceNumber: num(item.checkpointSubSequenceNumber),
    leaseCounter: num(item.leaseCounter),
    ownerSwitchesSinceCheckpoint: num(item.ownerSwitchesSinceCheckpoint),
  };
}

export async function readLeases(client: DynamoDBClient, table: string): Promise<LeaseRow[]> {
  const rows: LeaseRow[] = [];
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(
      new ScanCommand({ TableName: table, ExclusiveStartKey: startKey, ConsistentRead: true }),
    );
    for (const item of page.Items ?? []) rows.push(toLeaseRow(item));
    startKey = page.LastEvaluatedKey;
  } while (startKey !== undefined);
  return rows.sort((a, b) => a.shardId.localeCompare(b.shardId));
}
