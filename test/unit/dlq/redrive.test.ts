import { expect } from 'chai';
import type { PutRecordsCommandInput } from '@aws-sdk/client-kinesis';
import { parseEntry, type DeadLetterEntry, type RedriveCheck } from '../../../src/dlq/letters';
import {
  outcomeJson,
  outcomeLine,
  redriveExitCode,
  redriveLetters,
  redrivePartitionKey,
  summaryLine,
  type ClaimResult,
  type RedriveOptions,
  type RedriveOutcome,
  type RedriveStore,
} from '../../../src/dlq/redrive';
import type { PutRecordsFn } from '../../../src/replay/producer';

const STREAM = 'market-sbe-trade';

function letter(id: string, fields: Record<string, string> = {}): DeadLetterEntry {
  return parseEntry(
    id,
    Object.entries({
      error_code: 'FUTURE_TIME',
      shard: 'shardId-000000000000',
      sequence_number: `seq-${id}`,
      partition_key: 'BTCUSDT',
      symbol: 'BTCUSDT',
      error: 'too far ahead',
      data_base64: Buffer.from(`frame ${id}`).toString('base64'),
      ...fields,
    }).flat(),
  );
}

/** A dead-letter stream in memory with the claim rules of lua/dlq-claim-2.lua and lua/dlq-release-2.lua. */
class FakeStore implements RedriveStore {
  readonly letters = new Set<string>();
  readonly claims = new Map<string, string>();
  readonly calls: string[] = [];
  failRelease = false;

  constructor(
    ids: readonly string[],
    private readonly token = 'me',
  ) {
    for (const id of ids) this.letters.add(id);
  }

  claim(id: string): Promise<ClaimResult> {
    this.calls.push(`claim ${id}`);
    if (!this.letters.has(id)) return Promise.resolve('gone');
    const holder = this.claims.get(id);
    if (holder !== undefined && holder !== this.token) return Promise.resolve('busy');
    this.claims.set(id, this.token);
    return Promise.resolve('claimed');
  }

  release(id: string, trim: boolean): Promise<number> {
    this.calls.push(`release ${id} ${trim}`);
    if (this.failRelease) return Promise.reject(new Error('connection lost'));
    if (this.claims.get(id) === this.token) this.claims.delete(id);
    if (!trim) return Promise.resolve(0);
    return Promise.resolve(this.letters.delete(id) ? 1 : 0);
  }
}

/** A PutRecords that acknowledges every record but those `refuse` names (by data), recording each call. */
function fakePut(refuse: (data: string, attempt: number) => string | undefined = () => undefined) {
  const calls: PutRecordsCommandInput[] = [];
  let seq = 100;
  const attempts = new Map<string, number>();
  const put: PutRecordsFn = (input) => {
    calls.push(input);
    const records = (input.Records ?? []).map((r) => {
      const data = Buffer.from(r.Data!).toString();
      const attempt = (attempts.get(data) ?? 0) + 1;
      attempts.set(data, attempt);
      const error = refuse(data, attempt);
      if (error !== undefined) return { ErrorCode: error, ErrorMessage: 'slow down' };
      return { ShardId: `shard-of-${r.PartitionKey}`, SequenceNumber: String(seq++) };
    });
    return Promise.resolve({
      Records: records,
      FailedRecordCount: records.filter((r) => 'ErrorCode' in r).length,
    });
  };
  return { put, calls };
}

const pass = (): RedriveCheck => ({ ok: true, frames: 1 });

function options(
  store: RedriveStore,
  put: PutRecordsFn,
  extra: Partial<RedriveOptions> = {},
): RedriveOptions {
  return {
    streamName: STREAM,
    store,
    putRecords: put,
    check: pass,
    sleep: () => Promise.resolve(),
    ...extra,
  };
}

describe('re-driving dead letters (src/dlq/redrive.ts)', () => {
  it('puts each letter as one record with its partition key, then trims it; in stream order', async () => {
    const store = new FakeStore(['1-0', '2-0']);
    const { put, calls } = fakePut();
    const seen: RedriveOutcome[] = [];
    const outcomes = await redriveLetters(
      [letter('1-0'), letter('2-0', { partition_key: 'ETHUSDT', symbol: 'ETHUSDT' })],
      options(store, put, { onOutcome: (o) => seen.push(o) }),
    );
    expect(calls).to.have.length(1);
    expect(calls[0]!.StreamName).to.equal(STREAM);
    expect(calls[0]!.Records!.map((r) => [Buffer.from(r.Data!).toString(), r.PartitionKey])).to.deep.equal([
      ['frame 1-0', 'BTCUSDT'],
      ['frame 2-0', 'ETHUSDT'],
    ]);
    expect(outcomes.map(outcomeJson)).to.deep.equal([
      {
        id: '1-0',
        outcome: 'redriven',
        error_code: 'FUTURE_TIME',
        symbol: 'BTCUSDT',
        shard_id: 'shard-of-BTCUSDT',
        sequence_number: '100',
      },
      {
        id: '2-0',
        outcome: 'redriven',
        error_code: 'FUTURE_TIME',
        symbol: 'ETHUSDT',
        shard_id: 'shard-of-ETHUSDT',
        sequence_number: '101',
      },
    ]);
    expect(seen).to.deep.equal(outcomes);
    expect(store.letters.size).to.equal(0);
    expect(store.claims.size).to.equal(0);
    // Claimed before the put, trimmed after it.
    expect(store.calls).to.deep.equal(['claim 1-0', 'claim 2-0', 'release 1-0 true', 'release 2-0 true']);
    expect(redriveExitCode(outcomes)).to.equal(0);
  });

  it('a record Kinesis keeps refusing is reported failed and kept; the others are trimmed; exit 1', async () => {
    const store = new FakeStore(['1-0', '2-0']);
    const { put, calls } = fakePut((data) =>
      data === 'frame 1-0' ? 'ProvisionedThroughputExceededException' : undefined,
    );
    const outcomes = await redriveLetters([letter('1-0'), letter('2-0')], options(store, put));
    expect(outcomes.map((o) => o.kind)).to.deep.equal(['failed', 'redriven']);
    expect(outcomeJson(outcomes[0]!)).to.include({
      error: 'ProvisionedThroughputExceededException: slow down',
    });
    // Three attempts of the refused record alone.
    expect(calls.map((c) => c.Records!.length)).to.deep.equal([2, 1, 1]);
    expect([...store.letters]).to.deep.equal(['1-0']);
    expect(store.claims.size).to.equal(0);
    expect(redriveExitCode(outcomes)).to.equal(1);
  });

  it('a refused entry that succeeds on a retry is re-driven', async () => {
    const store = new FakeStore(['1-0']);
    const { put } = fakePut((_data, attempt) => (attempt === 1 ? 'InternalFailure' : undefined));
    const outcomes = await redriveLetters([letter('1-0')], options(store, put));
    expect(outcomes.map((o) => o.kind)).to.deep.equal(['redriven']);
    expect(store.letters.size).to.equal(0);
  });

  it('a call that fails outright keeps every letter of it', async () => {
    const store = new FakeStore(['1-0', '2-0']);
    const put: PutRecordsFn = () => Promise.reject(new Error('connect ECONNREFUSED'));
    const outcomes = await redriveLetters([letter('1-0'), letter('2-0')], options(store, put));
    expect(outcomes.map((o) => o.kind)).to.deep.equal(['failed', 'failed']);
    expect(outcomeLine(outcomes[0]!)).to.equal(
      'failed     1-0  FUTURE_TIME  BTCUSDT: connect ECONNREFUSED; kept',
    );
    expect(store.letters.size).to.equal(2);
    expect(store.claims.size).to.equal(0);
  });

  it('a letter the check refuses is not claimed nor put, unless forced', async () => {
    const check = (e: DeadLetterEntry): RedriveCheck =>
      e.id === '1-0'
        ? { ok: false, code: 'TRUNCATED', reason: 'the bytes do not decode (TRUNCATED: ...)' }
        : pass();
    const store = new FakeStore(['1-0', '2-0']);
    const { put, calls } = fakePut();
    const outcomes = await redriveLetters([letter('1-0'), letter('2-0')], options(store, put, { check }));
    expect(outcomes.map((o) => o.kind)).to.deep.equal(['refused', 'redriven']);
    expect(outcomeJson(outcomes[0]!)).to.include({ check_code: 'TRUNCATED' });
    expect(outcomeLine(outcomes[0]!)).to.match(/^refused {4}1-0 .*would not be applied: .*--force/);
    expect(calls[0]!.Records).to.have.length(1);
    expect(store.calls).to.not.include('claim 1-0');
    expect([...store.letters]).to.deep.equal(['1-0']);
    expect(redriveExitCode(outcomes)).to.equal(1);

    const forced = await redriveLetters([letter('1-0')], options(store, put, { check, force: true }));
    expect(forced.map((o) => o.kind)).to.deep.equal(['redriven']);
    expect(store.letters.size).to.equal(0);
  });

  it('a dry run checks only: no claim, no put, no trim', async () => {
    const store = new FakeStore(['1-0', '2-0']);
    const { put, calls } = fakePut();
    const check = (e: DeadLetterEntry): RedriveCheck =>
      e.id === '2-0' ? { ok: false, code: 'FUTURE_TIME', reason: 'ahead' } : pass();
    const outcomes = await redriveLetters(
      [letter('1-0'), letter('2-0'), { notFound: '3-0' }],
      options(store, put, { check, dryRun: true }),
    );
    expect(outcomes.map((o) => o.kind)).to.deep.equal(['would_redrive', 'refused', 'not_found']);
    expect(calls).to.deep.equal([]);
    expect(store.calls).to.deep.equal([]);
    expect(summaryLine(outcomes, STREAM, true)).to.equal(
      'dlq redrive --dry-run (market-sbe-trade): 3 selected; 1 would redrive, 1 refused, 1 not found',
    );
    expect(redriveExitCode(outcomes.slice(0, 1))).to.equal(0);
  });

  it('two operators: a letter another re-drive holds is left to it (busy); one it already trimmed is gone', async () => {
    const store = new FakeStore(['1-0', '2-0'], 'operator-b');
    store.claims.set('1-0', 'operator-a');
    store.letters.delete('2-0'); // operator A re-drove it after B listed it
    const { put, calls } = fakePut();
    const outcomes = await redriveLetters([letter('1-0'), letter('2-0')], options(store, put));
    expect(outcomes.map((o) => o.kind)).to.deep.equal(['busy', 'gone']);
    expect(calls).to.deep.equal([]);
    expect(store.claims.get('1-0')).to.equal('operator-a');
    // busy makes the run exit 1 (A's put may still fail); gone alone does not: the letter was re-driven.
    expect(redriveExitCode(outcomes)).to.equal(1);
    expect(redriveExitCode(outcomes.slice(1))).to.equal(0);
    expect(summaryLine(outcomes, STREAM, false)).to.equal(
      'dlq redrive (market-sbe-trade): 2 selected; 0 redriven, 0 refused, 0 failed, 0 untrimmed, 1 busy, 1 gone, 0 not found',
    );
  });

  it('put but not trimmed (Redis lost after the put) is reported: a later re-drive puts it again, harmlessly', async () => {
    const store = new FakeStore(['1-0']);
    store.failRelease = true;
    const { put } = fakePut();
    const outcomes = await redriveLetters([letter('1-0')], options(store, put));
    expect(outcomes.map(outcomeJson)).to.deep.equal([
      {
        id: '1-0',
        outcome: 'untrimmed',
        error_code: 'FUTURE_TIME',
        symbol: 'BTCUSDT',
        shard_id: 'shard-of-BTCUSDT',
        sequence_number: '100',
        error: 'connection lost',
      },
    ]);
    expect(redriveExitCode(outcomes)).to.equal(1);
  });

  it('an id not in the stream is reported not found (exit 1)', async () => {
    const outcomes = await redriveLetters([{ notFound: '9-9' }], options(new FakeStore([]), fakePut().put));
    expect(outcomes.map(outcomeJson)).to.deep.equal([{ id: '9-9', outcome: 'not_found' }]);
    expect(outcomeLine(outcomes[0]!)).to.match(/^not found {2}9-9: not in the stream/);
    expect(redriveExitCode(outcomes)).to.equal(1);
  });

  it('splits into PutRecords calls of at most 500 records', async () => {
    const ids = Array.from({ length: 1203 }, (_, i) => `${i + 1}-0`);
    const store = new FakeStore(ids);
    const { put, calls } = fakePut();
    const outcomes = await redriveLetters(
      ids.map((id) => letter(id)),
      options(store, put),
    );
    expect(calls.map((c) => c.Records!.length)).to.deep.equal([500, 500, 203]);
    expect(outcomes.every((o) => o.kind === 'redriven')).to.equal(true);
    expect(store.letters.size).to.equal(0);
  });

  it("partition key: the original record's, else the symbol, else a constant", () => {
    expect(redrivePartitionKey(letter('1-0', { partition_key: 'pk-1' }))).to.equal('pk-1');
    expect(redrivePartitionKey(letter('1-0', { partition_key: '' }))).to.equal('BTCUSDT');
    expect(redrivePartitionKey(letter('1-0', { partition_key: '', symbol: '' }))).to.equal('dlq-redrive');
  });
});
