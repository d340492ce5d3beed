import path from 'node:path';
import { expect } from 'chai';
import { Command } from 'commander';
import {
  ReplayUsageError,
  planReplay,
  registerReplay,
  simulatorClockNote,
  simulatorOptions,
} from '../../../src/cli/dev/replay';
import type { RawReplayOptions, ReplayPlan, SimulatorSource } from '../../../src/cli/dev/replay';
import { parseConfig } from '../../../src/config/config';
import { MarketSimulator, simulate } from '../../../src/replay/simulator';
import {
  CATCH_UP_US,
  chooseActionsPerSecond,
  eventTimeUs,
  measureNaturalRates,
} from '../../../src/replay/wall-clock';
import { sharedDir } from '../../helpers/paths';

const CONFIG = parseConfig({
  aws: { region: 'eu-west-1', kinesis: { endpoint: 'http://127.0.0.1:4568' } },
  processing: { symbols: ['BTCUSDT', 'ETHUSDT'] },
});
const NOW = (): bigint => 1_700_000_000_000_000n;
const CSV = path.join(
  sharedDir,
  'data',
  'btcusdt-trades',
  'nautilus_tardis_binance-futures_btcusdt_trades.csv',
);

function usageError(raw: RawReplayOptions): string {
  try {
    planReplay(raw, CONFIG, NOW);
  } catch (err) {
    expect(err).to.be.instanceOf(ReplayUsageError);
    return (err as Error).message;
  }
  throw new Error(`expected a usage error for ${JSON.stringify(raw)}`);
}

describe('replay/cli options', () => {
  it('defaults: simulator on the configured symbols from an hour ago, kpl, as fast as possible, held to the clock', () => {
    const plan = planReplay({}, CONFIG, NOW);
    expect(plan).to.deep.equal({
      source: {
        kind: 'simulator',
        symbols: ['BTCUSDT', 'ETHUSDT'],
        seed: 1,
        startTimeUs: 1_700_000_000_000_000n - CATCH_UP_US,
        actionsPerSecond: undefined,
        rest: undefined,
      },
      maxEvents: undefined,
      durationMs: undefined,
      eventsPerSecond: 0,
      notBeforeEventTime: true,
      recordMode: 'kpl',
      endpoint: 'http://127.0.0.1:4568',
      region: 'eu-west-1',
      streams: CONFIG.aws.kinesis.streams,
      archive: undefined,
    });
  });

  it('parses every option', () => {
    const plan = planReplay(
      {
        symbols: 'SOLUSDT',
        seed: '42',
        events: '5000',
        duration: '2.5',
        rate: '100',
        recordMode: 'single',
        endpoint: 'http://localhost:9999/',
        startTimeUs: '1600000000000000',
        restPort: '8091',
        restHost: 'localhost',
        restLinger: '2.5',
        archive: '/tmp/archive',
        archiveGzip: true,
      },
      CONFIG,
      NOW,
    );
    expect(plan.source).to.deep.equal({
      kind: 'simulator',
      symbols: ['SOLUSDT'],
      seed: 42,
      startTimeUs: 1_600_000_000_000_000n,
      actionsPerSecond: undefined,
      rest: { port: 8091, host: 'localhost', lingerMs: 2500 },
    });
    expect(plan).to.include({
      maxEvents: 5000,
      durationMs: 2500,
      eventsPerSecond: 100,
      notBeforeEventTime: false,
      recordMode: 'single',
      endpoint: 'http://localhost:9999',
    });
    expect(plan.archive).to.deep.equal({ dir: '/tmp/archive', gzip: true });
    expect(planReplay({ archive: 'arch' }, CONFIG, NOW).archive).to.deep.equal({ dir: 'arch', gzip: false });
    const csv = planReplay({ source: 'csv', file: CSV, format: 'tardis' }, CONFIG, NOW);
    expect(csv.source).to.deep.equal({ kind: 'csv', file: CSV, format: 'tardis', symbol: undefined });
    expect(csv.notBeforeEventTime).to.equal(false);
  });

  it('--rest-port: host 127.0.0.1 and no linger by default, 0 for a free port, IP addresses as hosts', () => {
    const rest = (raw: RawReplayOptions): unknown => {
      const { source } = planReplay(raw, CONFIG, NOW);
      return source.kind === 'simulator' ? source.rest : 'not a simulator source';
    };
    expect(rest({ restPort: '8091' })).to.deep.equal({ port: 8091, host: '127.0.0.1', lingerMs: 0 });
    expect(rest({ restPort: '0', restLinger: '0' })).to.deep.equal({
      port: 0,
      host: '127.0.0.1',
      lingerMs: 0,
    });
    expect(rest({ restPort: '65535', restHost: '0.0.0.0', restLinger: '10' })).to.deep.equal({
      port: 65535,
      host: '0.0.0.0',
      lingerMs: 10000,
    });
    expect(rest({ restPort: '1', restHost: '::1' })).to.deep.equal({ port: 1, host: '::1', lingerMs: 0 });
    expect(rest({ restPort: '1', restHost: 'sim-exchange.local' })).to.include({
      host: 'sim-exchange.local',
    });
  });

  it('refuses bad --rest-* options with a message naming the option', () => {
    expect(usageError({ restPort: '65536' })).to.equal(
      '--rest-port expects a port number 0..65535 (0 = a free port), got "65536"',
    );
    expect(usageError({ restPort: '-1' })).to.equal(
      '--rest-port expects a port number 0..65535 (0 = a free port), got "-1"',
    );
    expect(usageError({ restPort: 'http' })).to.match(/^--rest-port expects a port number/);
    expect(usageError({ restPort: '' })).to.match(/^--rest-port expects a port number/);
    expect(usageError({ restPort: '8091', restHost: 'http://127.0.0.1' })).to.equal(
      '--rest-host expects a host name or IP address, got "http://127.0.0.1"',
    );
    expect(usageError({ restPort: '8091', restHost: '' })).to.match(/^--rest-host expects/);
    expect(usageError({ restPort: '8091', restHost: 'a b' })).to.match(/^--rest-host expects/);
    expect(usageError({ restPort: '8091', restLinger: '-1' })).to.equal(
      '--rest-linger expects a number >= 0, got "-1"',
    );
    expect(usageError({ restPort: '8091', restLinger: 'forever' })).to.match(/^--rest-linger expects/);
    expect(usageError({ restHost: '127.0.0.1' })).to.equal('--rest-host needs --rest-port');
    expect(usageError({ restLinger: '5' })).to.equal('--rest-linger needs --rest-port');
    expect(usageError({ source: 'csv', file: CSV, restPort: '8091' })).to.equal(
      '--rest-port does not apply to --source csv',
    );
    expect(usageError({ source: 'csv', file: CSV, restHost: '127.0.0.1' })).to.equal(
      '--rest-host does not apply to --source csv',
    );
    expect(usageError({ source: 'csv', file: CSV, restLinger: '1' })).to.equal(
      '--rest-linger does not apply to --source csv',
    );
  });

  it('refuses bad options with a message naming the option', () => {
    expect(usageError({ source: 'kafka' })).to.equal('--source expects simulator or csv, got "kafka"');
    expect(usageError({ events: '0' })).to.equal('--events expects a positive integer, got "0"');
    expect(usageError({ events: '1e3' })).to.match(/^--events/);
    expect(usageError({ rate: '-5' })).to.equal('--rate expects a number >= 0, got "-5"');
    expect(usageError({ duration: '0' })).to.equal('--duration must be > 0');
    expect(usageError({ recordMode: 'zip' })).to.equal(
      '--record-mode expects kpl, concat, single, got "zip"',
    );
    expect(usageError({ symbols: 'btcusdt' })).to.match(/^--symbols: "btcusdt" is not an upper-case symbol/);
    expect(usageError({ seed: 'x' })).to.match(/^--seed/);
    expect(usageError({ startTimeUs: 'yesterday' })).to.match(/^--start-time-us/);
    expect(usageError({ endpoint: 'localhost:4568' })).to.match(/^--endpoint expects an http\(s\) URL/);
    expect(usageError({ file: CSV })).to.equal('--file does not apply to --source simulator');
    expect(usageError({ source: 'csv' })).to.equal('--source csv needs --file <path>');
    expect(usageError({ source: 'csv', file: '/nonexistent.csv' })).to.equal(
      '--file /nonexistent.csv: cannot read the file',
    );
    expect(usageError({ source: 'csv', file: CSV, format: 'binance' })).to.match(
      /--format binance needs --symbol/,
    );
    expect(usageError({ source: 'csv', file: CSV, format: 'xml' })).to.match(/^--format expects/);
    expect(usageError({ source: 'csv', file: CSV, seed: '1' })).to.equal(
      '--seed does not apply to --source csv',
    );
    expect(usageError({ archiveGzip: true })).to.equal('--archive-gzip needs --archive <dir>');
    expect(usageError({ archive: 's3://bucket/x' })).to.equal(
      '--archive writes a local directory, got "s3://bucket/x" (in AWS a Firehose delivery stream archives)',
    );
    expect(usageError({ archive: ' ' })).to.equal('--archive expects a directory');
  });

  it('registers the replay command with its options', () => {
    const program = new Command();
    registerReplay(program);
    const replay = program.commands.find((c) => c.name() === 'replay');
    expect(replay).to.not.equal(undefined);
    const flags = replay!.options.map((o) => o.long);
    expect(flags).to.include.members([
      '--source',
      '--file',
      '--format',
      '--symbol',
      '--symbols',
      '--seed',
      '--events',
      '--duration',
      '--rate',
      '--record-mode',
      '--endpoint',
      '--start-time-us',
      '--rest-port',
      '--rest-host',
      '--rest-linger',
      '--archive',
      '--archive-gzip',
    ]);
  });

  describe('simulated event time', () => {
    const simulator = (plan: ReplayPlan): SimulatorSource => {
      if (plan.source.kind !== 'simulator') throw new Error('not a simulator source');
      return plan.source;
    };

    it('paced, no --start-time-us: activity scaled so that the natural rate is --rate, from now, held to the clock', () => {
      let reads = 0;
      const plan = planReplay({ rate: '2000' }, CONFIG, () => {
        reads++;
        return NOW();
      });
      const src = simulator(plan);
      const activity = { seed: 1, symbols: ['BTCUSDT', 'ETHUSDT'] };
      const expected = chooseActionsPerSecond(2000, (aps) =>
        measureNaturalRates({ ...activity, actionsPerSecond: aps }),
      );
      expect(src).to.include({ startTimeUs: NOW(), actionsPerSecond: expected });
      expect(plan.notBeforeEventTime).to.equal(true);
      expect(reads).to.equal(1);
      // The simulator built from the plan generates ~2000 events per simulated second.
      expect(measureNaturalRates(simulatorOptions(src)).total).to.be.closeTo(2000, 60);
    });

    it('unpaced --events N, no --start-time-us: the last of the N events is at now', () => {
      const plan = planReplay({ events: '5000', symbols: 'BTCUSDT,SOLUSDT', seed: '9' }, CONFIG, NOW);
      const src = simulator(plan);
      expect(src.actionsPerSecond).to.equal(undefined);
      expect(plan.notBeforeEventTime).to.equal(true);
      const sim = new MarketSimulator(simulatorOptions(src));
      const times: bigint[] = [];
      for (let i = 0; i < 5000; i++) times.push(eventTimeUs(sim.next().message));
      // Exactly: the dry run is the same deterministic simulator.
      expect(times[4999]).to.equal(NOW());
      expect(NOW() - times[0]! > 1_000_000n, 'the events span more than a second').to.equal(true);
    });

    it('an explicit --start-time-us gives exactly the sequence of simulate({seed, symbols, startTimeUs}), not held', () => {
      for (const raw of [{ rate: '2000' }, { events: '100' }, {}] as RawReplayOptions[]) {
        const plan = planReplay({ ...raw, seed: '5', startTimeUs: '1600000000000000' }, CONFIG, NOW);
        const src = simulator(plan);
        const options = { seed: 5, symbols: ['BTCUSDT', 'ETHUSDT'], startTimeUs: 1_600_000_000_000_000n };
        expect(simulatorOptions(src), JSON.stringify(raw)).to.deep.equal(options);
        expect(plan.notBeforeEventTime).to.equal(false);
        const sim = new MarketSimulator(simulatorOptions(src));
        const got = Array.from({ length: 3000 }, () => sim.next());
        expect(got).to.deep.equal([...simulate(options, 3000)]);
      }
    });

    it('tells on stderr where event time starts and how it follows the clock', () => {
      const note = (raw: RawReplayOptions): string[] => {
        const plan = planReplay(raw, CONFIG, NOW);
        return simulatorClockNote(plan, simulator(plan));
      };
      expect(note({ startTimeUs: '1600000000000000' })).to.deep.equal([
        'replay: simulated events from 2020-09-13T12:26:40.000Z (--start-time-us), published as they come',
      ]);
      expect(note({})).to.deep.equal([
        'replay: simulated events from 2023-11-14T21:13:20.000Z, as fast as possible until they reach the ' +
          'clock, then as they fall due',
      ]);
      expect(note({ rate: '2000' })[0]).to.match(
        /^replay: simulated events from 2023-11-14T22:13:20\.000Z at \d+ book actions\/s per symbol, about 2000 events per simulated second/,
      );
      expect(note({ rate: '2000' })).to.have.length(1);
      expect(note({ rate: '5' })[1]).to.match(
        /^replay: warning: --rate 5 is below the quietest simulated market/,
      );
      // Two symbols' quietest market makes ~68 events/s: 100 is reachable, no warning.
      expect(note({ rate: '100' })).to.have.length(1);
    });
  });
});
