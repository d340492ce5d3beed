import net from 'node:net';
import type { AddressInfo } from 'node:net';

// A TCP proxy standing in for a managed Redis endpoint whose DNS name moves to the new primary on a failover: it
// forwards every new connection to its current backend. Switching the backend leaves the open connections on the
// old one, as a DNS change does: a client must reconnect by itself (e.g. on READONLY) to reach the new primary.

export interface TcpProxy {
  readonly port: number;
  /** Points new connections at `port`; the open ones stay where they are. */
  switchTo(port: number): void;
  /** Closes every open connection. */
  dropAll(): void;
  stop(): Promise<void>;
}

export async function startTcpProxy(backendPort: number, host = '127.0.0.1'): Promise<TcpProxy> {
  let backend = backendPort;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(backend, host);
    open.add(client);
    open.add(upstream);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    switchTo(port: number) {
      backend = port;
    },
    dropAll() {
      for (const socket of open) socket.destroy();
      open.clear();
    },
    async stop() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
