import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { findFreePort } from '../../src/localstack/ports';
import { startKinesisMock, type KinesisMockHandle } from '../../src/localstack/kinesis-mock';
import { repoRoot, sharedDir } from '../helpers/paths';

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
});
