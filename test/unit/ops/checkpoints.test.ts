import { expect } from 'chai';
import {
  CHECKPOINT_FIELDS,
  checkpointJsonLine,
  classifyDynamoError,
  defaultSampleMs,
  formatCheckpointTable,
  leaseLiveness,
  toCheckpointRows,
  toLeaseRow,
  type LeaseRow,
} from '../../../src/ops/leases';

// The pure parts of `aggregator checkpoints`: liveness decision, rows, table and JSON forms, error lines.

function lease(overrides: Partial<LeaseRow> = {}): LeaseRow {
  return {
    shardId: 'shardId-000000000000',
    owner: 'worker-1',
    checkpoint: '49650000000000000000000000000000000000000000000000000002',
    checkpointSubSequenceNumber: 0,
    leaseCounter: 10,
    ownerSwitchesSinceCheckpoint: 0,
    ...overrides,
  };
}

const target = { table: 'agg-trade', stream: 'market-sbe-trade', region: 'eu-west-1', endpoint: undefined };

function awsError(name: string, message = `${name} message`, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { name, ...extra });
}

describe('checkpoints (pure parts)', function () {
  describe('toLeaseRow', function () {
    it('reads the KCL lease attributes and leaves absent ones undefined', function () {
      expect(
        toLeaseRow({
          leaseKey: { S: 'shardId-000000000001' },
          leaseOwner: { S: 'w' },
          checkpoint: { S: 'TRIM_HORIZON' },
          checkpointSubSequenceNumber: { N: '3' },
          leaseCounter: { N: '42' },
        }),
      ).to.deep.equal({
        shardId: 'shardId-000000000001',
        owner: 'w',
        checkpoint: 'TRIM_HORIZON',
        checkpointSubSequenceNumber: 3,
        leaseCounter: 42,
        ownerSwitchesSinceCheckpoint: undefined,
      });
    });
  });

  describe('leaseLiveness', function () {
    it('is alive when the owner bumped the counter between the reads', function () {
      expect(leaseLiveness(lease({ leaseCounter: 11 }), lease({ leaseCounter: 10 }))).to.equal('alive');
    });

    it('is stale when an owned lease kept its counter', function () {
      expect(leaseLiveness(lease(), lease())).to.equal('stale');
    });

    it('is alive when another worker took the lease between the reads (counter moved)', function () {
      expect(leaseLiveness(lease({ owner: 'worker-2', leaseCounter: 12 }), lease())).to.equal('alive');
    });

    it('is unowned without a leaseOwner, sampled or not', function () {
      expect(leaseLiveness(lease({ owner: undefined }), lease({ owner: undefined }))).to.equal('unowned');
      expect(leaseLiveness(lease({ owner: undefined }), undefined)).to.equal('unowned');
    });

    it('is ended at SHARD_END even when still owned and renewed', function () {
      expect(leaseLiveness(lease({ checkpoint: 'SHARD_END', leaseCounter: 11 }), lease())).to.equal('ended');
      expect(leaseLiveness(lease({ checkpoint: 'SHARD_END' }), undefined)).to.equal('ended');
    });

    it('is unknown for an owned lease without a second read or without counters', function () {
      expect(leaseLiveness(lease(), undefined)).to.equal('unknown');
      expect(leaseLiveness(lease({ leaseCounter: undefined }), lease())).to.equal('unknown');
    });
  });

  describe('defaultSampleMs', function () {
    it('is 2 renewal intervals (failover / 3), rounded up, capped at 15 s', function () {
      expect(defaultSampleMs(6000)).to.equal(4000);
      expect(defaultSampleMs(10000)).to.equal(6667);
      expect(defaultSampleMs(1000)).to.equal(667);
      expect(defaultSampleMs(600000)).to.equal(15000);
    });
  });

  describe('toCheckpointRows', function () {
    const read = {
      stream: 'market-sbe-trade',
      kind: 'trade',
      table: 'agg-trade',
      sampleMs: 3000,
    };

    it('pairs each lease with its earlier read by shard id', function () {
      const rows = toCheckpointRows({
        ...read,
        earlier: [lease({ shardId: 'shardId-000000000001', leaseCounter: 5 }), lease({ leaseCounter: 7 })],
        latest: [
          lease({ leaseCounter: 9 }),
          lease({ shardId: 'shardId-000000000001', leaseCounter: 5 }),
          lease({ shardId: 'shardId-000000000002' }),
        ],
      });
      expect(rows.map((r) => [r.shardId, r.alive, r.leaseCounterDelta])).to.deep.equal([
        ['shardId-000000000000', 'alive', 2],
        ['shardId-000000000001', 'stale', 0],
        ['shardId-000000000002', 'unknown', null],
      ]);
      expect(rows[0]).to.include({
        stream: 'market-sbe-trade',
        kind: 'trade',
        table: 'agg-trade',
        sampleMs: 3000,
      });
    });

    it('turns absent values into null and reports unknown liveness without a sample', function () {
      const [row] = toCheckpointRows({
        ...read,
        sampleMs: undefined,
        earlier: undefined,
        latest: [lease({ checkpoint: undefined, checkpointSubSequenceNumber: undefined })],
      });
      expect(row).to.deep.equal({
        stream: 'market-sbe-trade',
        kind: 'trade',
        table: 'agg-trade',
        shardId: 'shardId-000000000000',
        owner: 'worker-1',
        checkpoint: null,
        checkpointSubSequenceNumber: null,
        leaseCounter: 10,
        leaseCounterDelta: null,
        ownerSwitchesSinceCheckpoint: 0,
        alive: 'unknown',
        sampleMs: null,
      });
    });
  });

  describe('checkpointJsonLine', function () {
    it('has every documented field, in order, null when absent', function () {
      const [row] = toCheckpointRows({
        stream: 's',
        kind: 'depth',
        table: 't',
        sampleMs: undefined,
        earlier: undefined,
        latest: [lease({ owner: undefined })],
      });
      const line = checkpointJsonLine(row!);
      expect(line).to.not.contain('\n');
      const parsed = JSON.parse(line) as Record<string, unknown>;
      expect(Object.keys(parsed)).to.deep.equal([...CHECKPOINT_FIELDS]);
      expect(parsed.owner).to.equal(null);
      expect(parsed.alive).to.equal('unowned');
    });
  });

  describe('formatCheckpointTable', function () {
    it('prints a header and aligned columns, numbers right-aligned, - for absent values', function () {
      const rows = toCheckpointRows({
        stream: 'market-sbe-trade',
        kind: 'trade',
        table: 't',
        sampleMs: 3000,
        earlier: [lease(), lease({ shardId: 'shardId-000000000001', leaseCounter: 100 })],
        latest: [
          lease(),
          lease({
            shardId: 'shardId-000000000001',
            leaseCounter: 101,
            owner: undefined,
            checkpoint: undefined,
          }),
        ],
      });
      const lines = formatCheckpointTable(rows).split('\n');
      expect(lines).to.have.length(4); // header, two rows, '' after the final newline
      expect(lines[3]).to.equal('');
      expect(lines[0]).to.match(/^STREAM +SHARD +OWNER +CHECKPOINT +SUBSEQ +COUNTER +SWITCHES +ALIVE$/);
      expect(lines[1]).to.match(
        /^market-sbe-trade +shardId-000000000000 +worker-1 +4965\d+ +0 +10 +0 +stale \(owner may be dead\)$/,
      );
      expect(lines[2]).to.match(/^market-sbe-trade +shardId-000000000001 +- +- +0 +101 +0 +unowned$/);
      // Aligned: every column starts at the same offset on every line.
      for (const header of ['SHARD', 'OWNER', 'CHECKPOINT', 'ALIVE']) {
        const at = lines[0]!.indexOf(header);
        expect(lines[1]![at - 1], header).to.equal(' ');
        expect(lines[1]![at], header).to.not.equal(' ');
        expect(lines[2]![at], header).to.not.equal(' ');
      }
      // Right-aligned numbers end under the end of their header.
      const counterEnd = lines[0]!.indexOf('COUNTER') + 'COUNTER'.length;
      expect(lines[1]!.slice(counterEnd - 2, counterEnd)).to.equal('10');
      expect(lines[2]!.slice(counterEnd - 3, counterEnd)).to.equal('101');
    });

    it('prints only the header for no rows', function () {
      expect(formatCheckpointTable([])).to.equal(
        'STREAM  SHARD  OWNER  CHECKPOINT  SUBSEQ  COUNTER  SWITCHES  ALIVE\n',
      );
    });
  });

  describe('classifyDynamoError', function () {
    it('names the table, the stream and the endpoint of a missing table', function () {
      const failure = classifyDynamoError(awsError('ResourceNotFoundException'), {
        ...target,
        endpoint: 'http://127.0.0.1:8000',
      });
      expect(failure.kind).to.equal('missing-table');
      expect(failure.message).to.contain('lease table agg-trade of stream market-sbe-trade does not exist');
      expect(failure.message).to.contain('http://127.0.0.1:8000');
    });

    it('tells what to fix for each credentials problem, on one line', function () {
      const cases: Array<[string, string]> = [
        ['CredentialsProviderError', 'set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY'],
        ['UnrecognizedClientException', 'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY'],
        ['InvalidSignatureException', 'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY'],
        ['ExpiredTokenException', 'refresh the credentials'],
        [
          'AccessDeniedException',
          'needs dynamodb:Scan on arn:aws:dynamodb:eu-west-1:<account>:table/agg-trade',
        ],
      ];
      for (const [name, fix] of cases) {
        const failure = classifyDynamoError(awsError(name, 'line one\nline two'), target);
        expect(failure.kind, name).to.equal('credentials');
        expect(failure.message, name).to.contain(fix);
        expect(failure.message, name).to.contain(`${name}: line one line two`);
        expect(failure.message, name).to.not.contain('\n');
      }
    });

    it('reports an unreachable endpoint by its error code, also inside an AggregateError', function () {
      const refused = classifyDynamoError(
        awsError('Error', 'connect ECONNREFUSED', { code: 'ECONNREFUSED' }),
        {
          ...target,
          endpoint: 'http://127.0.0.1:9',
        },
      );
      expect(refused).to.deep.equal({
        kind: 'unreachable',
        message:
          'cannot reach DynamoDB at http://127.0.0.1:9 (ECONNREFUSED): check aws.dynamodb.endpoint and ' +
          'aws.region in the config, and that the local stack is up (aggregator stack status)',
      });
      const aggregate = Object.assign(new Error(''), {
        name: 'AggregateError',
        errors: [{ code: 'ECONNREFUSED' }],
      });
      expect(classifyDynamoError(aggregate, target).kind).to.equal('unreachable');
      const notFound = classifyDynamoError(awsError('Error', 'getaddrinfo', { code: 'ENOTFOUND' }), target);
      expect(notFound.message).to.contain('https://dynamodb.eu-west-1.amazonaws.com (ENOTFOUND)');
      expect(classifyDynamoError(awsError('TimeoutError'), target).kind).to.equal('unreachable');
    });

    it('passes anything else through with the table and the SDK error', function () {
      expect(
        classifyDynamoError(awsError('ProvisionedThroughputExceededException', 'slow down'), target),
      ).to.deep.equal({
        kind: 'other',
        message:
          'reading lease table agg-trade of stream market-sbe-trade failed: ProvisionedThroughputExceededException: slow down',
      });
      expect(classifyDynamoError('weird', target).kind).to.equal('other');
    });
  });
});
