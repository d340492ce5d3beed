import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logging/logger';

// GET /metrics (Prometheus text format) on metrics.prometheus_port. The exposition is produced per scrape by the
// caller (SidecarMetrics.exposition with the processors' reports read from Redis).

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricsServer {
  readonly url: string;
  stop(): Promise<void>;
}

export async function startMetricsServer(options: {
  readonly host: string;
  readonly port: number;
  readonly exposition: () => Promise<string>;
  readonly logger: Logger;
}): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    options.exposition().then(
      (text) => res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(text),
      (err: unknown) => {
        options.logger.warn('metrics scrape failed', { error: (err as Error).message });
        res
          .writeHead(500, { 'content-type': 'text/plain' })
          .end(`metrics unavailable: ${(err as Error).message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}/metrics`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
