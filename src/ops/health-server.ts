import http from 'node:http';
import type { AddressInfo } from 'node:net';

// The sidecar's operations HTTP endpoint (node:http, no framework):
//   GET /health  the handler's answer (JSON; 200 when healthy, 503 otherwise), 503 if it fails or is too slow
//   GET /live    200 while the process and its event loop answer (touches nothing else: container liveness)
//   anything else 404 (a known path with another method: 405)

export interface HealthAnswer {
  readonly httpStatus: number;
  readonly body: unknown;
}

export interface HealthServerOptions {
  readonly host: string;
  /** 0 = any free port (see `url`). */
  readonly port: number;
  readonly handler: () => Promise<HealthAnswer>;
  /** /health answers 503 when the handler has not answered within this time. */
  readonly timeoutMs?: number;
}

export interface HealthServer {
  /** http://<host>:<bound port> (127.0.0.1 when bound to every interface). */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, body: unknown, head: boolean): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(head ? undefined : text);
}

async function answerHealth(handler: () => Promise<HealthAnswer>, timeoutMs: number): Promise<HealthAnswer> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<HealthAnswer>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          httpStatus: 503,
          body: { status: 'unhealthy', reason: `health check did not complete within ${timeoutMs} ms` },
        }),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([handler(), late]);
  } catch (err) {
    return {
      httpStatus: 503,
      body: { status: 'unhealthy', reason: `health check failed: ${(err as Error).message}` },
    };
  } finally {
    clearTimeout(timer);
  }
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const head = req.method === 'HEAD';
    const known = path === '/health' || path === '/live';
    if (!known) {
      send(res, 404, { error: `not found: ${path}` }, head);
      return;
    }
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, { error: `method not allowed: ${req.method}` }, false);
      return;
    }
    if (path === '/live') {
      send(res, 200, { status: 'alive', timestamp: new Date().toISOString(), pid: process.pid }, head);
      return;
    }
    void answerHealth(options.handler, timeoutMs).then((answer) =>
      send(res, answer.httpStatus, answer.body, head),
    );
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
