import { expect } from 'chai';
import { parseClusterNodes } from '../../../../src/dev/localstack/redis-cluster';

// The reply seen when `--cluster create` left a replica out (a CI run): three masters with slots, two replicas,
// and the sixth node unknown to the first.
const partial = [
  '416e56f3 127.0.0.1:44345@54345 slave 2c24e0c0 0 1796562557000 1 connected',
  '2c24e0c0 127.0.0.1:45687@55687 myself,master - 0 1796562556000 1 connected 0-5460',
  '65f2b06f 127.0.0.1:39861@49861 master - 0 1796562557561 2 connected 5461-10922',
  '6aa13516 127.0.0.1:43707@53707 master - 0 1796562557661 3 connected 10923-16383',
  '7c2bcac4 127.0.0.1:34535@44535 slave 6aa13516 0 1796562557000 3 connected',
  '9d1e0f00 127.0.0.1:40001@50001 master - 0 1796562557000 0 connected',
  '',
].join('\n');

describe('Redis Cluster test topology', () => {
  it('parses CLUSTER NODES: role, master, port, whether a master holds slots', () => {
    const view = parseClusterNodes(partial);
    expect(view).to.have.length(6);
    expect(view[0]).to.deep.equal({
      id: '416e56f3',
      port: 44345,
      role: 'slave',
      masterId: '2c24e0c0',
      hasSlots: false,
    });
    expect(view[1]).to.include({ role: 'master', port: 45687, hasSlots: true });
    expect(view[5]).to.include({ role: 'master', port: 40001, hasSlots: false });
  });
});
