import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { SoakReport } from '../../src/dev/bench/soak-report';
import { repoRoot } from '../helpers/paths';

// The short soak variant end to end (src/dev/bench/soak.ts as `npm run soak:short` runs it, only shorter): the local
// stack, three real KCL daemons and their processors, the sidecar, simulated BTCUSDT data at the default
// Binance-like rate. Asserts correctness only: every published event applied, the Redis state equal to the
// reference, no dead letters, and a report whose fields are present and consistent. Never a latency, throughput or
// memory figure: those depend on the machine (the memory bound may fail on a busy one; that is reported, not
// asserted here).

describe('soak (short variant): every event applied, exact state, a sane report', function () {
  this.timeout(420_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-soak-test-'));
  const reportFile = path.join(dir, 'soak-report.json');
  let stderr = '';

  after(function () {
    if (process.env.KEEP_TEST_DIRS === undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs 20 s of publishing and checks itself', async function () {
    const args = [
      path.join(repoRoot, 'dist/src/dev/bench/soak.js'),
      '--duration',
      '20',
      '--warmup',
      '4',
      '--sample',
      '5',
      '--settle',
      '120',
      '--report',
      reportFile,
    ];
    const env = { ...process.env };
    for (const name of Object.keys(env)) if (name.startsWith('SOAK_')) delete env[name];
    const child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    const explain = `exit ${code}\nstdout:\n${stdout}\nstderr (tail):\n${stderr.slice(-4000)}`;

    // 0 = every check passed, 1 = a check failed (reported); 2, 3 = bad options / pipeline not started.
    expect(code, explain).to.be.oneOf([0, 1]);
    expect(fs.existsSync(reportFile), explain).to.equal(true);
    const r = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as SoakReport;
    expect(stdout).to.include('end-to-end latency');

    // Correctness: nothing lost, nothing extra, the exact state, no poison.
    expect(r.errors, explain).to.deep.equal([]);
    expect(r.published.events).to.be.greaterThan(1000);
    expect(r.applied.events, explain).to.equal(r.published.events);
    expect(r.applied.pendingAtEnd).to.equal(0);
    expect(r.checks.allApplied).to.equal(true);
    expect(r.exactness.checked).to.equal(true);
    expect(r.exactness.differences, explain).to.deep.equal([]);
    expect(r.exactness.keysCompared).to.be.greaterThan(5);
    expect(r.checks.exact).to.equal(true);
    expect(r.deadLetters).to.equal(0);
    expect(r.checks.noDeadLetters).to.equal(true);
    expect(r.ok).to.equal(r.checks.memory); // the only check allowed to depend on the machine
    expect(code).to.equal(r.ok ? 0 : 1);

    // The report is complete and consistent.
    const perStream = r.published.perStream;
    expect(perStream.trade! + perStream.bestbidask! + perStream.depth!).to.equal(r.published.events);
    expect(r.published.eventsPerSecond).to.be.greaterThan(0);
    expect(r.applied.eventsPerSecond).to.be.greaterThan(0);
    expect(r.published.putRecordsCalls).to.be.greaterThan(0);
    for (const kind of ['trade', 'bestbidask', 'depth_diff', 'depth20', 'depth', 'all']) {
      const l = r.latency.byKind[kind];
      expect(l, kind).to.not.equal(undefined);
      expect(l!.visible, kind).to.equal(l!.published);
      for (const s of [l!.fromReturn, l!.fromSend]) {
        expect(s.count, kind).to.be.greaterThan(0);
        expect(s.p50, kind).to.be.at.least(0);
        expect(s.p50, kind).to.be.at.most(s.p99);
        expect(s.p99, kind).to.be.at.most(s.max);
      }
      expect(l!.fromReturn.count + l!.warmup, kind).to.equal(l!.visible);
    }
    const all = r.latency.byKind.all!;
    expect(all.published).to.equal(r.published.events);
    expect(r.latency.poller?.polls).to.be.greaterThan(0);

    // RSS sampled for every kind of process, at the start and at the end, with its limit.
    const kinds = r.memory.processes.map((p) => p.kind);
    for (const kind of ['redis-server', 'dynalite', 'kinesis-mock', 'sidecar', 'driver']) {
      expect(kinds, kind).to.include(kind);
    }
    const names = r.memory.processes.map((p) => p.name);
    for (const stream of ['trade', 'bestbidask', 'depth']) {
      expect(names).to.include(`kcl-${stream}`);
      expect(names).to.include(`processor-${stream}`);
    }
    for (const p of r.memory.processes) {
      expect(p.startMiB, p.name).to.be.greaterThan(0);
      expect(p.endMiB, p.name).to.be.greaterThan(0);
      expect(p.limitMiB, p.name).to.equal(p.startMiB! * r.memory.bound.factor + r.memory.bound.slackMiB);
      expect(p.ok, p.name).to.equal(p.endMiB! <= p.limitMiB!);
    }
    expect(r.memory.series.length).to.be.greaterThan(1);
    expect(r.memory.endSampledAtSeconds).to.be.greaterThan(r.memory.startSampledAtSeconds);
  });
});
