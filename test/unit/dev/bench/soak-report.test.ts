import { expect } from 'chai';
import { allChecksPass, formatSoakReport, type SoakReport } from '../../../../src/dev/bench/soak-report';
import { parseSoakOptions } from '../../../../src/dev/bench/soak-options';

const summary = (p50: number, p99: number) => ({ count: 10, p50, p99, max: p99 + 1, mean: p50 });
const kind = {
  published: 10,
  visible: 10,
  warmup: 0,
  fromReturn: summary(200, 900),
  fromSend: summary(300, 1000),
};

function report(overrides: Partial<SoakReport> = {}): SoakReport {
  const checks = { allApplied: true, exact: true, memory: true, noDeadLetters: true };
  return {
    version: 1,
    startedAt: '2026-11-25T14:00:00.000Z',
    finishedAt: '2026-11-25T14:11:00.000Z',
    machine: {
      cores: 2,
      cpuModel: 'cpu',
      memoryGiB: 24,
      node: 'v20',
      loadAverageStart: [1, 2, 3],
      loadAverageEnd: [4, 5, 6],
    },
    options: parseSoakOptions([], {}, '/r.json'),
    simulator: {
      seed: 1,
      symbol: 'BTCUSDT',
      actionsPerSecond: 535,
      diffIntervalMs: 20,
      snapshotIntervalMs: 50,
      naturalRates: { trade: 80, bestbidask: 150, depth: 70, total: 300 },
      simTimeRatio: 0.998,
    },
    published: {
      events: 180000,
      perStream: { trade: 48000, bestbidask: 90000, depth: 42000 },
      records: 9000,
      putRecordsCalls: 3000,
      retriedEntries: 0,
      elapsedMs: 600000,
      eventsPerSecond: 300,
      putRecordsMs: summary(50, 400),
    },
    applied: { events: 180000, pendingAtEnd: 0, eventsPerSecond: 299.9, drainMs: 250 },
    latency: {
      measuredFrom: 'PutRecords returned',
      measuredTo: 'first poll',
      warmupSeconds: 30,
      byKind: { trade: kind, bestbidask: kind, depth_diff: kind, depth20: kind, depth: kind, all: kind },
      visibleBeforeReturn: 0,
      outOfOrder: 0,
      poller: { type: 'stats', polls: 100, errors: 0, rttP50: 0.2, rttP99: 1, rttMax: 2, meanPeriodMs: 1.3 },
    },
    memory: {
      bound: { factor: 1.5, slackMiB: 64 },
      startSampledAtSeconds: 30,
      endSampledAtSeconds: 601,
      processes: [
        {
          name: 'kcl-trade',
          kind: 'kcl-daemon',
          startMiB: 180,
          endMiB: 400,
          limitMiB: 334,
          pidStart: [1],
          pidEnd: [1],
          restarted: false,
          ok: false,
          problem: 'RSS 400.0 MiB > 334.0 MiB (start x 1.5 + 64 MiB)',
        },
      ],
      series: [],
    },
    exactness: { checked: true, keysCompared: 11, differences: [], referenceMs: 5000 },
    deadLetters: 0,
    reanchorRequests: 0,
    checks,
    ok: allChecksPass(checks),
    runDir: '/tmp/x',
    errors: [],
    ...overrides,
  };
}

describe('soak report', function () {
  it('passes only when every check does', function () {
    expect(allChecksPass({ allApplied: true, exact: true, memory: true, noDeadLetters: true })).to.equal(
      true,
    );
    expect(allChecksPass({ allApplied: true, exact: true, memory: false, noDeadLetters: true })).to.equal(
      false,
    );
    expect(allChecksPass({ allApplied: false, exact: true, memory: true, noDeadLetters: true })).to.equal(
      false,
    );
  });

  it('prints the latency per kind, the RSS verdicts, exactness and the checks', function () {
    const text = formatSoakReport(
      report({
        checks: { allApplied: true, exact: false, memory: false, noDeadLetters: true },
        ok: false,
        exactness: {
          checked: true,
          keysCompared: 11,
          differences: ['ob:BTCUSDT best_bid: "1", reference "2"'],
          referenceMs: 1,
        },
      }),
    );
    expect(text).to.include('600 s at 300 events/s');
    expect(text).to.include(
      'simulator: 535 book actions/s, 300.0 events per simulated second; simulated time ran at 0.998 x the clock',
    );
    expect(text).to.match(/^trade\s+10\s+200\.0\s+900\.0\s+901\.0\s+200\.0\s+300\.0\s+1000\.0$/m);
    expect(text).to.match(/^kcl-trade\s+180\.0\s+400\.0\s+334\.0\s+FAIL: RSS 400\.0 MiB > 334\.0 MiB/m);
    expect(text).to.include('exactness: DIFFERENT (11 keys');
    expect(text).to.include('  ob:BTCUSDT best_bid: "1", reference "2"');
    expect(text).to.match(/checks: applied ok, exact FAIL, memory FAIL, dead letters ok => FAIL$/m);
  });
});
