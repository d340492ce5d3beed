import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import Redis from 'ioredis';
import { findFreePort } from '../../src/dev/localstack/ports';
import { startKinesisMock, type KinesisMockHandle } from '../../src/dev/localstack/kinesis-mock';
import { REANCHOR_GROUP } from '../../src/reanchor/requests';
import { Keys } from '../../src/state/keys';
import { repoRoot, sharedDir } from '../helpers/paths';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// The built CLI as users and scripts run it: exit codes, stdout/stderr split, messages.

const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');

function run(args: string[], input?: string, env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [cli, ...args], {
    input,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('aggregator CLI', function () {
  this.timeout(180_000);

  describe('decode', function () {
    const vectors = fs
      .readFileSync(path.join(sharedDir, 'vectors/sbe/vectors.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as { hex: string; expected: Record<string, unknown> });

    it('prints one JSON object per frame with every field and exits 0', function () {
      const out = run(['decode'], vectors.map((v) => v.hex).join('\n') + '\n');
      expect(out.code, out.stderr).to.equal(0);
      const lines = out.stdout.trim().split('\n');
      expect(lines).to.have.length(vectors.length);
      lines.forEach((line, i) => {
        const { line: lineNo, ...rest } = JSON.parse(line) as Record<string, unknown>;
        expect(lineNo).to.equal(i + 1);
        expect(rest).to.deep.equal(vectors[i]!.expected);
      });
    });

    it('reports a malformed line in place, keeps going, and exits 1', function () {
      const first = vectors[0]!.hex;
      const truncated = first.slice(0, 40);
      const base64 = Buffer.from(vectors[1]!.hex, 'hex').toString('base64');
      const out = run(['decode'], `${first}\n${truncated}\n${base64}\n`);
      expect(out.code).to.equal(1);
      const lines = out.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).to.have.length(3);
      expect(lines[0]!.message).to.equal('TradesStreamEvent');
      expect((lines[1]!.error as { code: string }).code).to.equal('TRUNCATED');
      expect(lines[2]!.message).to.equal(vectors[1]!.expected.message);
    });
  });

  describe('--version and --help', function () {
    it('--version prints the version of package.json and exits 0', function () {
      const version = (
        JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }
      ).version;
      for (const flag of ['--version', '-V']) {
        const out = run([flag]);
        expect(out.code, out.stderr).to.equal(0);
        expect(out.stdout.trim()).to.equal(version);
      }
    });

    it('--help lists the commands people run, not the daemon-only `process`', function () {
      const out = run(['--help']);
      expect(out.code).to.equal(0);
      for (const command of ['replay', 'decode', 'checkpoints', 'sidecar', 'reanchor', 'dlq', 'features']) {
        expect(out.stdout).to.match(new RegExp(`^  ${command}\\b`, 'm'));
      }
      expect(out.stdout).to.not.match(/^ {2}process\b/m);
      // The daemon still runs it.
      expect(run(['process', '--help']).stdout).to.contain('--stream <kind>');
    });

    it('checkpoints --help names the exit codes docs/operations.md lists', function () {
      const out = run(['checkpoints', '--help']);
      for (const code of ['0', '1', '2', '3', '4'])
        expect(out.stdout).to.match(new RegExp(`^ +${code} +\\S`, 'm'));
    });
  });

  describe('dlq exit codes', function () {
    it('--help names the exit codes docs/dead-letters.md lists; usage errors exit 2; an unreachable Redis exits 3', async function () {
      for (const sub of ['list', 'show', 'redrive']) {
        const help = run(['dlq', sub, '--help']);
        expect(help.code).to.equal(0);
        for (const code of ['0', '1', '2', '3'])
          expect(help.stdout).to.match(new RegExp(`^ +${code} +\\S`, 'm'));
      }
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-cli-dlq-'));
      const file = path.join(dir, 'config.yaml');
      // Nothing listens on this port.
      fs.writeFileSync(file, `redis:\n  port: ${await findFreePort()}\n`);
      const usage: string[][] = [
        ['dlq', 'list'],
        ['dlq', 'list', '--stream', 'trade', '--bogus'],
        ['dlq', 'list', '--stream', 'nope'],
        ['dlq', 'list', '--stream', 'trade', '--since', 'yesterday'],
        ['dlq', 'list', '--stream', 'trade', '--limit', '0'],
        ['dlq', 'show', 'not-an-id', '--stream', 'trade'],
        ['dlq', 'redrive', '--stream', 'trade'],
        ['dlq', 'redrive', '--stream', 'trade', '1-0', '--code', 'FUTURE_TIME'],
      ];
      for (const args of usage) {
        const out = run(['--config', file, ...args]);
        expect(out.code, `${args.join(' ')}: ${out.stderr}`).to.equal(2);
        expect(out.stdout).to.equal('');
      }
      expect(run(['--config', file, 'dlq', 'list', '--stream', 'nope']).stderr).to.contain(
        '--stream: expected a stream kind (trade, bestbidask, depth) or a configured stream name',
      );
      const unreachable = run(['--config', file, 'dlq', 'list', '--stream', 'trade']);
      expect(unreachable.code, unreachable.stderr).to.equal(3);
      expect(unreachable.stderr).to.match(/^dlq list: Redis at 127\.0\.0\.1:\d+: /);
      fs.rmSync(dir, { recursive: true, force: true });
    });
  });

  describe('config errors', function () {
    it('names the bad key and exits non-zero', function () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-cli-'));
      const file = path.join(dir, 'bad.yaml');
      fs.writeFileSync(file, 'redis:\n  port: "abc"\n');
      const out = run(['--config', file, 'kcl', 'properties', '--stream', 'trade']);
      expect(out.code).to.not.equal(0);
      expect(out.stderr).to.contain('config key redis.port: expected an integer in 1..65535');
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('an unsupported key is an error naming its replacement; every key of the shipped configs is read', function () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-cli-'));
      const file = path.join(dir, 'old.yaml');
      fs.writeFileSync(file, 'processing:\n  batch_size: 500\n');
      const out = run(['--config', file, 'kcl', 'properties', '--stream', 'trade']);
      expect(out.code).to.not.equal(0);
      expect(out.stderr).to.contain('config key processing.batch_size: is not supported');
      expect(out.stderr).to.contain('max_records_per_poll');
      fs.rmSync(dir, { recursive: true, force: true });
      for (const shipped of ['config/aggregator.yaml', 'config/local.yaml']) {
        const ok = run(['--config', path.join(repoRoot, shipped), 'kcl', 'properties', '--stream', 'trade']);
        expect(ok.code, `${shipped}: ${ok.stderr}`).to.equal(0);
      }
    });
  });

  describe('replay --source csv into kinesis-mock', function () {
    let kinesis: KinesisMockHandle;
    let dir: string;
    let configFile: string;

    before(async function () {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-cli-replay-'));
      const port = await findFreePort();
      kinesis = await startKinesisMock({
        plainPort: port,
        streams: { 'market-sbe-trade': 1, 'market-sbe-bestbidask': 1, 'market-sbe-depth': 1 },
        logFile: path.join(dir, 'kinesis-mock.log'),
      });
      configFile = path.join(dir, 'config.yaml');
      fs.writeFileSync(configFile, `aws:\n  kinesis:\n    endpoint: "${kinesis.endpoint}"\n`);
    });

    after(async function () {
      await kinesis?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('publishes all 9,999 real trades of the Tardis file and prints a JSON summary', function () {
      const file = path.join(
        sharedDir,
        'data/btcusdt-trades/nautilus_tardis_binance-futures_btcusdt_trades.csv',
      );
      const out = run(['--config', configFile, 'replay', '--source', 'csv', '--file', file]);
      expect(out.code, out.stderr).to.equal(0);
      const summary = JSON.parse(out.stdout.trim()) as {
        events: number;
        eventsPerStream: Record<string, number>;
      };
      expect(summary.events).to.equal(9999);
      expect(summary.eventsPerStream).to.deep.equal({ trade: 9999, bestbidask: 0, depth: 0 });
    });

    it('stops on a bad row with the file, line, column and value named, exit 1', function () {
      const file = path.join(dir, 'trades.csv');
      fs.writeFileSync(
        file,
        '1,100.5,0.1,10.05,1700000000000,true,true\n2,abc,0.1,10.0,1700000000001,false,true\n',
      );
      const out = run([
        '--config',
        configFile,
        'replay',
        '--source',
        'csv',
        '--format',
        'binance',
        '--symbol',
        'BTCUSDT',
        '--file',
        file,
      ]);
      expect(out.code).to.equal(1);
      expect(out.stderr).to.match(/trades\.csv line 2, column price: "abc"/);
    });
  });

  describe('reanchor --wait', function () {
    const S = 'BTCUSDT';
    const keys = new Keys({ clusterMode: false });
    let dir: string;
    let server: TestRedis;
    let redis: Redis;
    let configFile: string;

    before(async function () {
      server = await startTestRedis('cli-reanchor');
      dir = server.dir;
      const port = server.port;
      redis = new Redis({ port, host: '127.0.0.1' });
      configFile = path.join(dir, 'config.yaml');
      fs.writeFileSync(
        configFile,
        `redis:\n  host: "127.0.0.1"\n  port: ${port}\nprocessing:\n  symbols: ["${S}"]\n`,
      );
    });

    after(async function () {
      redis.disconnect();
      await server?.stop();
    });

    beforeEach(() => redis.flushall());

    /** The CLI running in the background: its exit code, stdout and stderr once it ends. */
    function start(args: string[]) {
      const child = spawn(process.execPath, [cli, '--config', configFile, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const ended = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
        child.once('exit', (code) => resolve({ code, stdout, stderr })),
      );
      return { ended, stderr: () => stderr };
    }

    /** A listener's read, by hand: consumer `consumer` takes the next request; its entry id. */
    async function take(consumer: string, count = 1): Promise<string[]> {
      const read = (await redis.xreadgroup(
        'GROUP',
        REANCHOR_GROUP,
        consumer,
        'COUNT',
        String(count),
        'STREAMS',
        keys.reanchorRequests(),
        '>',
      )) as Array<[string, Array<[string, string[]]>]>;
      return read[0]![1].map(([id]) => id);
    }

    /** A listener's last steps, by hand: the outcome in the stats (and its counter), then the acknowledgement. */
    async function finish(
      id: string,
      counter: 'swapped' | 'failed',
      stats: Record<string, string>,
    ): Promise<void> {
      await redis.hset(keys.reanchorStats(S), stats);
      await redis.hincrby(keys.reanchorStats(S), counter, 1);
      await redis.del(keys.reanchorFlag(S));
      await redis.xack(keys.reanchorRequests(), REANCHOR_GROUP, id);
    }

    async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
      const deadline = Date.now() + 20_000;
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    it('before any sidecar: says no listener exists, keeps the request queued for the first one, never NOGROUP', async function () {
      const out = run(['--config', configFile, 'reanchor', S, '--wait', '--timeout', '1']);
      expect(out.code, out.stderr).to.equal(1);
      expect(out.stderr).to.include(`no listener has joined ${REANCHOR_GROUP} yet`);
      expect(out.stderr).to.include('the request stays queued');
      expect(out.stderr).to.not.match(/NOGROUP/);
      const result = JSON.parse(out.stdout) as { requestId: string; timedOut: boolean; listeners: number };
      expect(result).to.include({ timedOut: true, listeners: 0 });
      // The request waits in the group, not yet handed to anyone: the first listener reads it.
      expect(await redis.xlen(keys.reanchorRequests())).to.equal(1);
      expect(await take('first-listener', 10)).to.deep.equal([result.requestId]);
    });

    it('reports each phase in words as a listener takes, runs and finishes the request, then exits 0', async function () {
      const cliRun = start(['reanchor', S, '--wait', '--timeout', '60']);
      // A listener's steps, by hand: join and take the entry, hold the lock, write the outcome, acknowledge.
      await until('the request', async () => (await redis.xlen(keys.reanchorRequests())) === 1);
      await until('the no-listener line', () => cliRun.stderr().includes('no listener has joined'));
      const [id] = await take('listener-a');
      await until('the taken line', () => cliRun.stderr().includes('taken by listener listener-a'));
      await redis.set(keys.reanchorFlag(S), 'token-1|1');
      await until('the running line', () => cliRun.stderr().includes('running (attempt token-1|1)'));
      await finish(id!, 'swapped', {
        last_outcome: 'swapped',
        last_duration_ms: '42',
        last_attempts: '1',
        last_update_id: '123',
      });
      const out = await cliRun.ended;
      expect(out.code, out.stderr).to.equal(0);
      expect(out.stderr).to.include(
        `re-anchor of ${S} swapped in after 42 ms, 1 attempt(s); book at update id 123`,
      );
      const lines = out.stderr.trim().split('\n');
      expect(lines.filter((l) => l.includes('taken by listener'))).to.have.length(1, 'each phase once');
      expect((JSON.parse(out.stdout) as { requestId: string }).requestId).to.equal(id);
    });

    it('a failed run: the outcome and the last failure in words, exit 1', async function () {
      const cliRun = start(['reanchor', S, '--wait', '--timeout', '60']);
      await until('the request', async () => (await redis.xlen(keys.reanchorRequests())) === 1);
      const [id] = await take('listener-b');
      await finish(id!, 'failed', {
        last_outcome: 'failed',
        last_duration_ms: '900',
        last_attempts: '3',
        last_failure: 'rest: HTTP 429',
      });
      const out = await cliRun.ended;
      expect(out.code).to.equal(1);
      expect(out.stderr).to.include(
        `re-anchor of ${S} ended without a swap (failed) after 900 ms, 3 attempt(s); last failure: rest: HTTP 429`,
      );
    });
  });
});
