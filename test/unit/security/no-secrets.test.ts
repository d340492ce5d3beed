import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import winston from 'winston';
import { loadConfig, parseConfig, parseRedisUrl } from '../../../src/config/config';
import { ConfigError } from '../../../src/config/errors';
import { createLogger } from '../../../src/logging/logger';
import { logRedisFailure, RedisOutage } from '../../../src/state/outage';
import { createRedisClient } from '../../../src/state/redis';
import { repoRoot } from '../../helpers/paths';

// The Redis password (redis.password, or inside redis.url) never appears in an error message or a log line:
// config errors do not echo secret values, invalid YAML is reported without the parser's excerpt of the file, and
// nothing in src logs the config or the Redis connection options.

const SECRET = 'S3cr3t-Pa55w0rd';

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

function expectNoSecret(text: string, secret = SECRET): void {
  expect(text, 'the message').to.not.include(secret);
  // Nor a recognizable part of it (a password cut by an unencoded '/' or '@' lands in another URL part).
  expect(text).to.not.include(secret.slice(0, 6));
  expect(text).to.not.include(secret.slice(-6));
}

describe('security: no secrets in errors or logs', () => {
  describe('config errors for a redis.url with a password never echo it', () => {
    const bad: Array<[string, string]> = [
      ['an invalid port', `redis://aggregator:${SECRET}@redis.internal:63x79`],
      ['no host, the password read as a port', `redis://:${SECRET}`],
      ['spaces', `redis://aggregator:${SECRET} @redis internal:6379`],
      [
        'an unencoded "/" in the password (the rest lands in the path)',
        `redis://aggregator:12/${SECRET}@host:6379`,
      ],
      ['a bad percent-encoding in the password', `redis://aggregator:${SECRET}%E0%A4%A@host:6379`],
      ['another scheme', `http://aggregator:${SECRET}@host:6379`],
      ['no scheme', `aggregator:${SECRET}@host:6379`],
      ['a non-numeric database', `rediss://aggregator:${SECRET}@host:6379/${SECRET}`],
    ];
    for (const [name, url] of bad) {
      it(name, () => {
        const viaParse = messageOf(() => parseRedisUrl(url));
        const viaConfig = messageOf(() => parseConfig({ redis: { url, password: SECRET } }));
        expect(viaConfig).to.match(/^config key redis\.url: /);
        expectNoSecret(viaParse);
        expectNoSecret(viaConfig);
      });
    }

    for (const [name, url] of bad) {
      it(`REDIS_URL from the environment, ${name}: the error names REDIS_URL, not the password`, () => {
        const message = messageOf(() => parseConfig({}, { REDIS_URL: url, REDIS_PASSWORD: SECRET }));
        expect(message).to.match(/^config key REDIS_URL: /);
        expectNoSecret(message);
      });
    }

    it('a valid URL parses, the password decoded', () => {
      const config = parseConfig({
        redis: { url: `rediss://aggregator:${encodeURIComponent(SECRET)}@host:6380/2` },
      });
      expect(config.redis).to.include({
        username: 'aggregator',
        password: SECRET,
        tls: true,
        port: 6380,
        db: 2,
      });
    });
  });

  describe('a mistyped secret is not echoed', () => {
    it('redis.password read by YAML as a number', () => {
      const message = messageOf(() => parseConfig({ redis: { password: 987654321987 } }));
      expect(message).to.equal('config key redis.password: expected a string, got number (value not shown)');
      expectNoSecret(message, '987654321987');
    });

    it('redis.url as a number', () => {
      const message = messageOf(() => parseConfig({ redis: { url: 123456789123 } }));
      expectNoSecret(message, '123456789123');
    });

    it('other keys still show the value (they are not secrets)', () => {
      expect(messageOf(() => parseConfig({ redis: { port: 'abc', password: SECRET } }))).to.equal(
        'config key redis.port: expected an integer in 1..65535, got string "abc"',
      );
    });
  });

  describe('config files with a password', () => {
    let dir: string;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'no-secrets-'));
    });
    after(() => {
      fs.rmSync(dir, { recursive: true, force: true });
    });

    const files: Array<[string, string]> = [
      ['an unclosed quote after the password', `redis:\n  password: "${SECRET}\n  port: 6379\n`],
      ['a bad indent under the password', `redis:\n  password: ${SECRET}\n   port: 6379\n`],
      ['a bad indent under the url', `redis:\n  url: redis://u:${SECRET}@h:6379\n   port: 1\n`],
      ['a flow mapping left open', `redis: {password: ${SECRET}, port: [1}\n`],
      ['a valid file with another bad key', `redis:\n  password: ${SECRET}\n  port: 0\n`],
      ['a valid file with a bad url', `redis:\n  url: redis://u:${SECRET}@h:x\n`],
    ];
    for (const [name, text] of files) {
      it(`${name}: the error names the file, not the password`, () => {
        const file = path.join(dir, 'config.yaml');
        fs.writeFileSync(file, text);
        const message = messageOf(() => loadConfig(file, {}));
        expectNoSecret(message);
      });
    }

    it('invalid YAML still says where', () => {
      const file = path.join(dir, 'config.yaml');
      fs.writeFileSync(file, files[1]![1]);
      expect(messageOf(() => loadConfig(file, {}))).to.match(
        /is not valid YAML: .* at line \d+, column \d+$/,
      );
    });
  });

  describe('logs', () => {
    function capture(): { logger: winston.Logger; lines: () => string } {
      const logger = createLogger({ level: 'debug', file: undefined, defaultMeta: { service: 'test' } });
      const out = new PassThrough();
      let text = '';
      out.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      logger.clear();
      logger.add(new winston.transports.Stream({ stream: out }));
      return { logger, lines: () => text };
    }

    it('the lines the service writes carry no password: a real Redis client refused by the server, the config', async () => {
      // A fake Redis on loopback that refuses every command as a server with another password would: the client
      // built from the config (src/state/redis.ts) sends AUTH with the password, the refusal comes back as an
      // ioredis ReplyError, and it is logged the way src logs Redis failures (RedisOutage, logRedisFailure in
      // src/state/outage.ts). The lines are checked for the password, not typed here.
      const sockets = new Set<net.Socket>();
      const server = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
        socket.on('data', () =>
          socket.write('-WRONGPASS invalid username-password pair or user is disabled.\r\n'),
        );
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as net.AddressInfo).port;
      const config = parseConfig({
        redis: { url: `redis://aggregator:${SECRET}@127.0.0.1:${port}/0` },
      });
      expect(config.redis.password).to.equal(SECRET);
      const { logger, lines } = capture();
      const client = createRedisClient(config.redis, { connectionName: 'no-secrets-test' });
      // As the processes follow their connection (src/state/outage.ts): the outage line carries the error.
      const outage = new RedisOutage({ logger });
      outage.watch(client);
      try {
        await client.ping().then(
          () => expect.fail('the fake server accepted a command'),
          (err: unknown) => logRedisFailure(undefined, logger, 'error', 'redis write failed', err),
        );
        await new Promise((resolve) => setTimeout(resolve, 50));
      } finally {
        client.disconnect();
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => server.close(resolve));
      }
      // The other lines src writes from the config or about it: the listen URL, a bad URL, a config error.
      logger.info('health endpoint listening', {
        url: `http://${config.health.host}:${config.health.port}/health`,
      });
      logger.error('start-up failed', { error: messageOf(() => parseRedisUrl(`redis://u:${SECRET}@h:x`)) });
      logger.error('config', new ConfigError('redis.url', 'is not a URL'));
      await new Promise((resolve) => setImmediate(resolve));
      expect(lines(), 'the refusal was logged').to.include('WRONGPASS');
      expect(lines(), 'the outage line').to.include('redis unavailable: waiting for it');
      expect(lines().split('\n').filter(Boolean).length).to.be.at.least(5);
      expectNoSecret(lines());
    });

    it('no logger call in src passes the config, the redis section or connection options', () => {
      const offenders: string[] = [];
      const call = /\blogger\.(?:info|warn|error|debug|log)\(/g;
      const forbidden =
        /\bpassword\b|\bconfig\s*(?:[,)}]|$)|\bconfig\.redis\b(?!\.(?:clusterMode|host|port|db)\b)|\.\.\.\s*config\b|\bredisOptions\b|\.options\s*(?:[,)}]|$)|\bbaseOptions\b|\bredis\.url\b/;
      const walk = (dir: string): string[] =>
        fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
          const full = path.join(dir, entry.name);
          if (entry.isDirectory()) return walk(full);
          return entry.name.endsWith('.ts') ? [full] : [];
        });
      const files = walk(path.join(repoRoot, 'src'));
      expect(files.length).to.be.greaterThan(20);
      let calls = 0;
      for (const file of files) {
        const text = fs.readFileSync(file, 'utf8');
        for (const match of text.matchAll(call)) {
          // The call's argument text, up to its balanced closing parenthesis.
          let depth = 1;
          let i = (match.index ?? 0) + match[0].length;
          const start = i;
          for (; i < text.length && depth > 0; i++) {
            if (text[i] === '(') depth++;
            else if (text[i] === ')') depth--;
          }
          calls++;
          const args = text.slice(start, i - 1);
          if (forbidden.test(args)) {
            offenders.push(
              `${path.relative(repoRoot, file)}: logger.${match[0]}${args.replace(/\s+/g, ' ')})`,
            );
          }
        }
      }
      expect(calls, 'logger calls found').to.be.greaterThan(20);
      // The scan itself catches the shapes it looks for.
      for (const leak of [
        "'x', config",
        "'x', { redis: config.redis }",
        "'x', { ...config }",
        "'x', client.options",
      ]) {
        expect(forbidden.test(leak), leak).to.equal(true);
      }
      expect(forbidden.test("'x', { clusterMode: config.redis.clusterMode, error: err.message }")).to.equal(
        false,
      );
      expect(offenders).to.deep.equal([]);
    });
  });
});
