import { CreateTableCommand, DescribeTableCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { ListShardsCommand } from '@aws-sdk/client-kinesis';
import { applicationName, STREAM_KINDS, type AppConfig } from '../../src/config/config';
import { createDynamoClient } from '../../src/ops/leases';
import { createKinesisClient } from '../../src/replay/producer';

// Seeds each stream's lease table with one unowned lease per shard, as KCL's own shard sync writes them
// (checkpoint = the configured initial position, the shard's hash range), before the first daemon starts.
//
// Why: a KCL 2.7 worker that finds its lease table empty waits a random 1-30 s (Scheduler.shouldInitiateLeaseSync,
// not configurable) before it creates the leases itself; a suite starting ~20 pipelines spent minutes there.
// With the leases present the workers take them at once. KCL's own lease creation stays covered by the tests that
// start a pipeline with `kclCreatesLeases` (e2e) and by every test that launches daemons without this helper.

export async function seedLeaseTables(config: AppConfig): Promise<void> {
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  const kinesis = createKinesisClient({
    region: config.aws.region,
    endpoint: config.aws.kinesis.endpoint,
    credentials,
  });
  const dynamo = createDynamoClient(config.aws.region, config.aws.dynamodb.endpoint);
  try {
    for (const kind of STREAM_KINDS) {
      const listed = await kinesis.send(
        new ListShardsCommand({ StreamName: config.aws.kinesis.streams[kind] }),
      );
      const table = applicationName(config, kind);
      await dynamo.send(
        new CreateTableCommand({
          TableName: table,
          KeySchema: [{ AttributeName: 'leaseKey', KeyType: 'HASH' }],
          AttributeDefinitions: [{ AttributeName: 'leaseKey', AttributeType: 'S' }],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
      // dynalite answers CreateTable with CREATING; items go in once it is ACTIVE.
      for (let tries = 0; ; tries++) {
        const described = await dynamo.send(new DescribeTableCommand({ TableName: table }));
        if (described.Table?.TableStatus === 'ACTIVE') break;
        if (tries > 200) throw new Error(`lease table ${table} not ACTIVE after 10 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const shard of listed.Shards ?? []) {
        const range = shard.HashKeyRange;
        if (shard.ShardId === undefined || range?.StartingHashKey === undefined) continue;
        await dynamo.send(
          new PutItemCommand({
            TableName: table,
            Item: {
              leaseKey: { S: shard.ShardId },
              checkpoint: { S: config.aws.kinesis.initialPosition },
              checkpointSubSequenceNumber: { N: '0' },
              leaseCounter: { N: '0' },
              ownerSwitchesSinceCheckpoint: { N: '0' },
              startingHashKey: { S: range.StartingHashKey },
              endingHashKey: { S: range.EndingHashKey ?? range.StartingHashKey },
            },
          }),
        );
      }
    }
  } finally {
    kinesis.destroy();
    dynamo.destroy();
  }
}
