import { expect } from 'chai';
import { parseConfig, parseRedisUrl } from '../../../src/config/config';

describe('redis.url', function () {
  it('parses a TLS URL with ACL user, password and db', function () {
    expect(parseRedisUrl('rediss://svc:s%40cret@cache.internal:6380/2')).to.deep.equal({
      host: 'cache.internal',
      port: 6380,
      username: 'svc',
      password: 's@cret',
      db: 2,
      tls: true,
    });
  });

  it('defaults port 6379, db 0, no TLS for redis://', function () {
    expect(parseRedisUrl('redis://localhost')).to.deep.equal({
      host: 'localhost',
      port: 6379,
      username: undefined,
      password: undefined,
      db: 0,
      tls: false,
    });
  });

  it('rejects other schemes and non-numeric databases, naming the key', function () {
    expect(() => parseRedisUrl('http://x')).to.throw(
      'config key redis.url: must start with redis:// or rediss://',
    );
    expect(() => parseRedisUrl('redis://x/abc')).to.throw(
      'config key redis.url: the path must be a database number',
    );
    expect(() => parseRedisUrl('not a url')).to.throw('config key redis.url: is not a URL');
  });

  it('feeds the redis config; explicit keys and env overrides win over the URL', function () {
    const fromUrl = parseConfig({ redis: { url: 'rediss://u:p@h:7000/3' } }).redis;
    expect([
      fromUrl.host,
      fromUrl.port,
      fromUrl.username,
      fromUrl.password,
      fromUrl.db,
      fromUrl.tls,
    ]).to.deep.equal(['h', 7000, 'u', 'p', 3, true]);
    const overridden = parseConfig(
      { redis: { url: 'rediss://u:p@h:7000/3', port: 7001, tls: false } },
      { REDIS_HOST: 'envhost' },
    ).redis;
    expect([overridden.host, overridden.port, overridden.tls]).to.deep.equal(['envhost', 7001, false]);
  });
});
