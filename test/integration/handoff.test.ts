import { expect } from 'chai';
import type { LeaseRow } from '../../src/ops/leases';
import type { SimulatedEvent } from '../../src/replay/simulator';
import { tradeSource } from '../helpers/trade-source';
import { PipelinePublisher } from '../helpers/exactness';
import { startPipeline, waitUntil, type DaemonHandle, type Pipeline } from '../helpers/pipeline';
import {
  framesStored,
  processorLogFile,
  processorLogSize,
  waitForProcessorLog,
  type ProcessorLogEntry,
} from '../helpers/processor-log';
import { describeLeases, leases, shardsOfSymbols, tail, waitForExit } from '../helpers/worker-faults';

// Issue 14: a planned hand-off (deploy, scale-in) redelivers nothing. Two real KCL daemons share a trade stream
// of 2 shards (one lease each), KPL-aggregated records flow and are checkpointed; one worker is stopped with
// SIGTERM (graceful: shutdownRequested to each of its processors, which checkpoint the last stored record,
// sub-sequence number included). The other worker takes the lease over and must start exactly after that
// record: every frame its new processor stores for the moved shard was published after the hand-off, and the
// state stays exact. Before the change the heir got sub-records 1..n of the last aggregate again (aws-kcl's
// checkpoint carries no sub-sequence number).

const CANDIDATES = ['BTCUSDT', 'ETHUSDT', 'DOGEUSDT', 'SOLUSDT', 'ADAUSDT', 'LINKUSDT'];
const WORKER_1 = 'worker-trade-1';
const WORKER_2 = 'worker-trade-2';

function figure(text: string): void {
  process.stderr.write(`      handoff: ${text}\n`);
}

describe('graceful hand-off: a worker stopped with SIGTERM checkpoints at shutdownRequested, nothing is redelivered', function () {
  this.timeout(480_000);
  let pipeline: Pipeline;
  let publisher: PipelinePublisher;
  let symbols: string[];
  let shardOf: Map<string, string>;
  const workers = new Map<string, DaemonHandle>();
  let next: (count: number) => SimulatedEvent[];

  async function tradeLeases(): Promise<LeaseRow[]> {
    return leases(pipeline, 'trade').catch(() => []);
  }

  async function diagnostics(): Promise<string> {
    const parts = [...workers].map(([id, h]) => `--- ${id}:\n${tail(h.logFile, 12)}`);
    parts.push(`--- processor.log:\n${tail(processorLogFile(pipeline), 15)}`);
    parts.push(`--- leases: ${describeLeases(await tradeLeases())}`);
    return parts.join('\n');
  }

  before(async function () {
    pipeline = await startPipeline({
      shards: { trade: 2, bestbidask: 1, depth: 1 },
      symbols: CANDIDATES,
      label: 'handoff',
    });
    const all = await shardsOfSymbols(pipeline, 'trade', CANDIDATES);
    // One symbol per shard, so that each shard's events are known exactly.
    const perShard = new Map<string, string>();
    for (const [symbol, shard] of all) if (!perShard.has(shard)) perShard.set(shard, symbol);
    expect(perShard.size, JSON.stringify([...all])).to.equal(2);
    symbols = [...perShard.values()];
    shardOf = new Map(symbols.map((s) => [s, all.get(s)!]));
    next = tradeSource({ seed: 4242, symbols, startTimeUs: 1_765_000_000_000_000n }, 50_000);
    publisher = new PipelinePublisher(pipeline);
    for (const id of [WORKER_1, WORKER_2]) workers.set(id, pipeline.startDaemon('trade', id));
  });

  after(async function () {
    publisher?.close();
    if (pipeline !== undefined) await pipeline.stop();
  });

  it('the heir of a SIGTERMed worker starts right after its last stored record: zero frames delivered twice', async function () {
    await waitUntil(
      async () => {
        const rows = await tradeLeases();
        return (
          rows.length === 2 &&
          rows.some((l) => l.owner === WORKER_1) &&
          rows.some((l) => l.owner === WORKER_2)
        );
      },
      180_000,
      'the two workers holding one trade lease each',
      diagnostics,
    );
    await publisher.publish(next(1200));
    const [before, beforeReference] = await publisher.settle(150_000);
    expect(before).to.deep.equal(beforeReference);
    const victimLease = (await tradeLeases()).find((l) => l.owner === WORKER_1)!;
    const shard = victimLease.shardId;
    // The test means something only if the last record of the shard is a sub-record of an aggregate beyond the first.
    expect(
      victimLease.checkpointSubSequenceNumber ?? 0,
      describeLeases(await tradeLeases()),
    ).to.be.greaterThan(0);

    const offset = processorLogSize(pipeline);
    const victim = workers.get(WORKER_1)!;
    const stopping = victim.stop(60_000);
    const exit = await waitForExit(victim.child, 90_000);
    await stopping;
    const shutdownLines = (
      await waitForProcessorLog(
        pipeline,
        offset,
        (entries) =>
          entries.some((e) => e.message?.startsWith('shutdown requested') === true && e.shard === shard),
        10_000,
      )
    ).filter((e) => e.message?.startsWith('shutdown requested') === true && e.shard === shard);
    expect(
      shutdownLines.map((e) => e.message),
      await diagnostics(),
    ).to.deep.equal(['shutdown requested; checkpointed the last stored record']);
    expect(shutdownLines[0]!.recorded).to.equal(true);

    const handedOff = Date.now();
    await waitUntil(
      async () => (await tradeLeases()).every((l) => l.owner === WORKER_2),
      180_000,
      `${WORKER_2} owning both trade leases`,
      diagnostics,
    );
    const tookMs = Date.now() - handedOff;
    const moved = (await tradeLeases()).find((l) => l.shardId === shard)!;
    expect([moved.checkpoint, moved.checkpointSubSequenceNumber]).to.deep.equal([
      victimLease.checkpoint,
      victimLease.checkpointSubSequenceNumber,
    ]);

    const afterEvents = next(800);
    await publisher.publish(afterEvents);
    const [state, reference] = await publisher.settle(150_000);
    expect(state).to.deep.equal(reference);
    const shardEventsAfter = afterEvents.filter((e) => shardOf.get(e.message.symbol) === shard).length;
    expect(shardEventsAfter).to.be.greaterThan(0);
    const heir = (e: ProcessorLogEntry) => e.shard === shard && e.pid !== shutdownLines[0]!.pid;
    const log = (
      await waitForProcessorLog(
        pipeline,
        offset,
        (entries) => framesStored(entries, heir) >= shardEventsAfter,
        15_000,
      )
    ).filter(heir);
    const starts = log.filter((e) => e.message === 'shard processor initialized');
    expect(starts.length, await diagnostics()).to.equal(1);
    expect(starts[0]!.startingSequenceNumber).to.equal(victimLease.checkpoint);
    const frames = framesStored(log);
    expect(
      frames,
      `frames the heir stored for ${shard} (published after the hand-off: ${shardEventsAfter})`,
    ).to.equal(shardEventsAfter);
    figure(
      `${WORKER_1} exited ${JSON.stringify(exit)}; ${WORKER_2} took ${shard} ${(tookMs / 1000).toFixed(1)} s later ` +
        `at ${victimLease.checkpoint}/${victimLease.checkpointSubSequenceNumber}; heir stored ${frames} frames, ` +
        `${shardEventsAfter} published after the hand-off (0 redelivered); state exact over ${publisher.events.length} events`,
    );
  });
});
