import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import Redis from 'ioredis';
import { readServedVectors } from '../../src/app/features-verify';
import { parseConfig } from '../../src/config/config';
import { parseServedLines } from '../../src/features/served-lines';
import { Keys } from '../../src/state/keys';
import { createRedisClient } from '../../src/state/redis';
import { runCli } from '../helpers/cli';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// `aggregator features export`: the served history as the JSON lines `dataset verify --served` reads, read from a
// real Redis in pages (more entries than one page), to stdout or to a file; a symbol without history exits 1.

describe('aggregator features export (real redis-server)', function () {
  this.timeout(60_000);
  let redis: TestRedis | undefined;
  let client: Redis | undefined;
  let dir = '';
  let configFile = '';
  const keys = new Keys({ clusterMode: false });

  before(async () => {
    redis = await startTestRedis('features-export');
    client = new Redis({ host: '127.0.0.1', port: redis.port });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'features-export-'));
    configFile = path.join(dir, 'config.yaml');
    fs.writeFileSync(configFile, `redis:\n  host: "127.0.0.1"\n  port: ${redis.port}\n`);
    // 2,345 entries (three XRANGE pages of 1,000), ids as the sidecar writes them (the tick), a field with a
    // 20-digit id and one with an empty value.
    const pipeline = client.pipeline();
    for (let i = 0; i < 2345; i++) {
      const tick = 1_700_000_000_000 + 2000 * i;
      pipeline.xadd(
        keys.featureHistory('BTCUSDT'),
        `${tick}-0`,
        'feature_ts',
        String(tick),
        'mid_price',
        String(60000 + i / 100),
        'src_last_trade_id',
        String(12345678901234567890n + BigInt(i)),
        'src_bba_update_id',
        '',
      );
    }
    pipeline.xadd(keys.featureHistory('ETHUSDT'), '1700000000000-0', 'feature_ts', '1700000000000');
    await pipeline.exec();
  });

  after(async () => {
    client?.disconnect();
    await redis?.stop();
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes every served vector, oldest first, as lines that read back as the history', async () => {
    const out = await runCli(['--config', configFile, 'features', 'export', 'btcusdt', 'ETHUSDT']);
    expect(out.code, out.stderr).to.equal(0);
    expect(out.stderr).to.contain('BTCUSDT: 2345 served vectors');
    expect(out.stderr).to.contain('ETHUSDT: 1 served vectors');
    const reader = createRedisClient(parseConfig({ redis: { port: redis!.port } }).redis, {
      connectionName: 'features-export-test',
    });
    try {
      const parsed = parseServedLines(out.stdout, 'stdout');
      expect(parsed.get('BTCUSDT')).to.deep.equal(await readServedVectors(reader, keys, 'BTCUSDT'));
      expect(parsed.get('ETHUSDT')).to.deep.equal(await readServedVectors(reader, keys, 'ETHUSDT'));
      expect(parsed.get('BTCUSDT')![2344]!.fields['src_last_trade_id']).to.equal('12345678901234570234');
    } finally {
      reader.disconnect();
    }
  });

  it('--out writes the same lines to a file; a symbol without history exits 1 and is named', async () => {
    const file = path.join(dir, 'served.jsonl');
    const toFile = await runCli(['--config', configFile, 'features', 'export', 'BTCUSDT', '--out', file]);
    expect(toFile.code, toFile.stderr).to.equal(0);
    expect(toFile.stdout).to.equal('');
    const toStdout = await runCli(['--config', configFile, 'features', 'export', 'BTCUSDT']);
    expect(fs.readFileSync(file, 'utf8')).to.equal(toStdout.stdout);
    expect(fs.existsSync(`${file}.partial`)).to.equal(false);

    const none = await runCli(['--config', configFile, 'features', 'export', 'SOLUSDT']);
    expect(none.code).to.equal(1);
    expect(none.stdout).to.equal('');
    expect(none.stderr).to.contain('SOLUSDT: 0 served vectors');
  });
});
