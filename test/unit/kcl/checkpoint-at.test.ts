import { PassThrough } from 'node:stream';
import kcl from 'aws-kcl';
import { expect } from 'chai';
import { checkpointAt } from '../../../src/kcl/protocol-adapter';

// checkpointAt reaches into aws-kcl's Checkpointer to send a sub-sequence number, which aws-kcl's own
// checkpoint() cannot. This drives the installed aws-kcl over its real stdin/stdout handling, so an upgrade
// that changes those internals fails here rather than in production.

function lines(stream: PassThrough): unknown[] {
  const text = (stream.read() as Buffer | null)?.toString('utf8') ?? '';
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown);
}

async function tick(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

describe('kcl/checkpointAt (against the installed aws-kcl)', () => {
  it('sends the sub-sequence number in the checkpoint line and hands the reply to the callback', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const replies: Array<string | null | undefined> = [];
    const processor: kcl.RecordProcessor = {
      initialize: (_i, done) => done(),
      processRecords(i, done) {
        const last = i.records[i.records.length - 1]!;
        checkpointAt(i.checkpointer, last.sequenceNumber, last.subSequenceNumber, (err) => {
          replies.push(err);
          // A plain checkpoint afterwards still works: the in-flight marker was cleared by the reply.
          checkpointAt(i.checkpointer, last.sequenceNumber, 0, (err2) => {
            replies.push(err2);
            done();
          });
        });
      },
      leaseLost: (_i, done) => done(),
      shardEnded: (_i, done) => done(),
    };
    kcl(processor, input, output, new PassThrough()).run();
    const send = (action: object) => input.write(`${JSON.stringify(action)}\n`);
    send({ action: 'initialize', shardId: 'shardId-000000000000', sequenceNumber: 'TRIM_HORIZON' });
    await tick();
    expect(lines(output)).to.deep.equal([{ action: 'status', responseFor: 'initialize' }]);
    send({
      action: 'processRecords',
      records: [
        { action: 'record', data: '', partitionKey: 'k', sequenceNumber: '700', subSequenceNumber: 0 },
        { action: 'record', data: '', partitionKey: 'k', sequenceNumber: '700', subSequenceNumber: 3 },
      ],
      millisBehindLatest: 0,
    });
    await tick();
    expect(lines(output)).to.deep.equal([
      { action: 'checkpoint', sequenceNumber: '700', subSequenceNumber: 3 },
    ]);
    send({ action: 'checkpoint', sequenceNumber: '700', subSequenceNumber: 3, error: null });
    await tick();
    expect(lines(output)).to.deep.equal([{ action: 'checkpoint', sequenceNumber: '700' }]);
    send({ action: 'checkpoint', sequenceNumber: '700', error: 'ThrottlingException' });
    await tick();
    expect(lines(output)).to.deep.equal([{ action: 'status', responseFor: 'processRecords' }]);
    expect(replies).to.deep.equal([null, 'ThrottlingException']);
  });
});
