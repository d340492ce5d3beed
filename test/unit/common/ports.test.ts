import fs from 'node:fs';
import net from 'node:net';
import { expect } from 'chai';
import { findFreePort, serverPortRange } from '../../../src/common/ports';

describe('common/ports', () => {
  describe('serverPortRange', () => {
    it('takes the ports below the ephemeral range', () => {
      expect(serverPortRange('32768\t60999\n')).to.deep.equal({ low: 10000, high: 32767 });
    });

    it('takes the ports above it when there is no room below', () => {
      expect(serverPortRange('1024 50000')).to.deep.equal({ low: 50001, high: 65535 });
    });

    it('gives undefined (ask the kernel) when there is no room or no readable range', () => {
      expect(serverPortRange('1024 65000')).to.equal(undefined);
      expect(serverPortRange(undefined)).to.equal(undefined);
      expect(serverPortRange('garbage')).to.equal(undefined);
      expect(serverPortRange('1 2 3')).to.equal(undefined);
    });
  });

  describe('findFreePort', () => {
    it('hands out distinct bindable ports outside the kernel ephemeral range', async () => {
      const range = serverPortRange(
        fs.existsSync('/proc/sys/net/ipv4/ip_local_port_range')
          ? fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
          : undefined,
      );
      const ports: number[] = [];
      for (let i = 0; i < 20; i++) ports.push(await findFreePort());
      expect(new Set(ports).size).to.equal(ports.length);
      for (const port of ports) {
        if (range !== undefined) expect(port).to.be.within(range.low, range.high);
        await new Promise<void>((resolve, reject) => {
          const server = net.createServer();
          server.once('error', reject);
          server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
        });
      }
    });

    it('never hands out a port something listens on', async () => {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '::', () => resolve()));
      const address = server.address();
      const taken = typeof address === 'object' && address !== null ? address.port : 0;
      try {
        for (let i = 0; i < 20; i++) expect(await findFreePort()).to.not.equal(taken);
      } finally {
        server.close();
      }
    });
  });
});
