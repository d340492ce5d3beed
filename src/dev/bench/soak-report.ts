import type { KindLatency } from './soak-latency';
import type { MemoryVerdict } from './soak-memory';
import type { NaturalRates } from '../../replay/wall-clock';
import type { SoakOptions } from './soak-options';
import type { PollerStats } from './soak-poller';
import type { Summary } from './stats';

// The soak run's report: what goes to .local/soak-report.json, the checks that decide the exit code, and the
// human table printed at the end. Pure.

export interface SoakChecks {
  /** Every published event became visible in Redis. */
  readonly allApplied: boolean;
  /** The pipeline's market state equals the reference over every published event. */
  readonly exact: boolean;
  /** Every process within the memory bound. */
  readonly memory: boolean;
  /** No dead letters (the simulator sends no poison records). */
  readonly noDeadLetters: boolean;
}

export interface SoakReport {
  readonly version: 1;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: {
    readonly cores: number;
    readonly cpuModel: string;
    readonly memoryGiB: number;
    readonly node: string;
    readonly loadAverageStart: readonly number[];
    readonly loadAverageEnd: readonly number[];
  };
  readonly options: SoakOptions;
  readonly simulator: {
    readonly seed: number;
    readonly symbol: string;
    readonly actionsPerSecond: number;
    readonly diffIntervalMs: number;
    readonly snapshotIntervalMs: number;
    /** Events per simulated second at these settings. */
    readonly naturalRates: NaturalRates;
    /** Simulated time elapsed / wall time elapsed while publishing (1 = event times follow the clock; the
     * producer holds events to the clock, so above 1 only by the set-up between the start time and publishing). */
    readonly simTimeRatio: number;
  };
  readonly published: {
    readonly events: number;
    readonly perStream: Record<string, number>;
    readonly records: number;
    readonly putRecordsCalls: number;
    readonly retriedEntries: number;
    readonly elapsedMs: number;
    readonly eventsPerSecond: number;
    /** PutRecords call duration (send to return), ms. */
    readonly putRecordsMs: Summary;
  };
  readonly applied: {
    readonly events: number;
    readonly pendingAtEnd: number;
    /** Events visible / (last visible - first PutRecords sent), events/s. */
    readonly eventsPerSecond: number;
    /** From the end of publishing until the last event was visible, ms. */
    readonly drainMs: number;
  };
  readonly latency: {
    readonly measuredFrom: string;
    readonly measuredTo: string;
    readonly warmupSeconds: number;
    readonly byKind: Record<string, KindLatency>;
    readonly visibleBeforeReturn: number;
    readonly outOfOrder: number;
    readonly poller: PollerStats | undefined;
  };
  readonly memory: {
    readonly bound: { readonly factor: number; readonly slackMiB: number };
    readonly startSampledAtSeconds: number;
    readonly endSampledAtSeconds: number;
    readonly processes: readonly MemoryVerdict[];
    /** Every sample during the run: seconds since the first PutRecords, then MiB per process name. */
    readonly series: readonly { readonly t: number; readonly rssMiB: Record<string, number> }[];
  };
  readonly exactness: {
    readonly checked: boolean;
    readonly keysCompared: number;
    readonly differences: readonly string[];
    readonly referenceMs: number;
  };
  readonly deadLetters: number;
  readonly reanchorRequests: number;
  readonly checks: SoakChecks;
  readonly ok: boolean;
  readonly runDir: string;
  readonly errors: readonly string[];
}

export function allChecksPass(checks: SoakChecks): boolean {
  return checks.allApplied && checks.exact && checks.memory && checks.noDeadLetters;
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const f1 = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(1));

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? pad(c, widths[i] as number) : lpad(c, widths[i] as number))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The human summary printed at the end of a run. */
export function formatSoakReport(r: SoakReport): string {
  const o = r.options;
  const lines: string[] = [];
  lines.push(
    `soak: ${o.durationSeconds} s at ${o.rate} events/s (${o.symbol}, seed ${o.seed}, ${o.recordMode} records, ` +
      `daemon poll ${o.kinesisPollMs} ms, warm-up ${o.warmupSeconds} s), ${r.machine.cores} cores, load ` +
      `${r.machine.loadAverageStart.map((x) => x.toFixed(2)).join('/')} -> ${r.machine.loadAverageEnd.map((x) => x.toFixed(2)).join('/')}`,
  );
  lines.push(
    `published ${r.published.events} events in ${(r.published.elapsedMs / 1000).toFixed(1)} s ` +
      `(${r.published.eventsPerSecond.toFixed(1)}/s; ${r.published.records} records, ${r.published.putRecordsCalls} ` +
      `PutRecords, p50 ${r.published.putRecordsMs.p50.toFixed(1)} / p99 ${r.published.putRecordsMs.p99.toFixed(1)} ms); ` +
      `applied ${r.applied.events} (${r.applied.eventsPerSecond.toFixed(1)}/s), ${r.applied.pendingAtEnd} not applied, ` +
      `last visible ${r.applied.drainMs.toFixed(0)} ms after publishing ended`,
  );
  const sim = r.simulator;
  lines.push(
    `simulator: ${sim.actionsPerSecond} book actions/s, ${sim.naturalRates.total.toFixed(1)} events per simulated ` +
      `second; simulated time ran at ${sim.simTimeRatio.toFixed(3)} x the clock`,
  );
  lines.push('');
  lines.push(
    `end-to-end latency, ${r.latency.measuredFrom} -> ${r.latency.measuredTo} (ms; after the warm-up):`,
  );
  const kinds = ['trade', 'bestbidask', 'depth_diff', 'depth20', 'depth', 'all'];
  lines.push(
    table(
      ['events', 'count', 'p50', 'p99', 'max', 'mean', 'from send p50', 'p99'],
      kinds
        .filter((k) => r.latency.byKind[k] !== undefined)
        .map((k) => {
          const l = r.latency.byKind[k] as KindLatency;
          return [
            k,
            String(l.fromReturn.count),
            f1(l.fromReturn.p50),
            f1(l.fromReturn.p99),
            f1(l.fromReturn.max),
            f1(l.fromReturn.mean),
            f1(l.fromSend.p50),
            f1(l.fromSend.p99),
          ];
        }),
    ),
  );
  if (r.latency.poller !== undefined) {
    const p = r.latency.poller;
    lines.push(
      `poller: ${p.polls} polls, every ${p.meanPeriodMs.toFixed(2)} ms on average, round trip p50 ` +
        `${p.rttP50.toFixed(2)} / p99 ${p.rttP99.toFixed(2)} ms`,
    );
  }
  lines.push('');
  lines.push(
    `RSS (MiB) at ${r.memory.startSampledAtSeconds.toFixed(0)} s and ${r.memory.endSampledAtSeconds.toFixed(0)} s; ` +
      `bound: end <= start x ${r.memory.bound.factor} + ${r.memory.bound.slackMiB} MiB`,
  );
  lines.push(
    table(
      ['process', 'start', 'end', 'limit', 'verdict'],
      r.memory.processes.map((p) => [
        p.name,
        f1(p.startMiB),
        f1(p.endMiB),
        f1(p.limitMiB),
        (p.ok ? 'ok' : `FAIL: ${p.problem ?? ''}`) + (p.restarted ? ' (restarted)' : ''),
      ]),
    ),
  );
  lines.push('');
  lines.push(
    r.exactness.checked
      ? `exactness: ${r.exactness.differences.length === 0 ? 'equal' : 'DIFFERENT'} (${r.exactness.keysCompared} keys ` +
          `against the reference over all ${r.published.events} events)`
      : 'exactness: not checked',
  );
  for (const d of r.exactness.differences) lines.push(`  ${d}`);
  lines.push(`dead letters ${r.deadLetters}, re-anchor requests ${r.reanchorRequests}`);
  for (const e of r.errors) lines.push(`error: ${e}`);
  const c = r.checks;
  lines.push(
    `checks: applied ${c.allApplied ? 'ok' : 'FAIL'}, exact ${c.exact ? 'ok' : 'FAIL'}, memory ${c.memory ? 'ok' : 'FAIL'}, ` +
      `dead letters ${c.noDeadLetters ? 'ok' : 'FAIL'} => ${r.ok ? 'PASS' : 'FAIL'}`,
  );
  return lines.join('\n');
}
