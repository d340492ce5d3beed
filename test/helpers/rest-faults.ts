import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';

// A fault-injecting REST front for tests: an HTTP proxy in front of a Binance-compatible REST server (the simulated
// exchange's, src/dev/rest/sim-server.ts). Every request to /api/v3/depth or /api/v3/trades takes the next fault of its
// endpoint's script (a FIFO the test fills), if any, and otherwise is forwarded unchanged: a scripted run of bad
// answers, then good ones. Faults:
//   status      the given HTTP status (500, 503, 429 ...), with a Retry-After header when asked
//   hang        no answer at all (the connection is held until the client gives up or the front stops)
//   garbage     200 with a body that is not JSON
//   crossed     depth: the best bid moved to the best ask's price
//   stale       depth: a good answer captured earlier (captureStale): a true book, but at an old lastUpdateId that
//               cannot bridge the diffs a running re-anchor has buffered since
//   missingLastUpdateId / lastUpdateIdString / bidsNotArray   depth: a field missing or of the wrong type
//   tradeGap    trades: the second newest trade removed (ids no longer consecutive)
//   millisecondTimes  trades: times in milliseconds although microseconds were asked for
// Every request is logged (endpoint, fault, status, when); an optional async hook runs when a request arrives and is
// awaited before it is answered (tests use it to prove a fault hit a running re-anchor).

export type RestEndpoint = 'depth' | 'trades';

export type RestFault =
  | { readonly kind: 'status'; readonly status: number; readonly retryAfterSeconds?: number }
  | { readonly kind: 'hang' }
  | { readonly kind: 'garbage' }
  | { readonly kind: 'crossed' }
  | { readonly kind: 'stale' }
  | { readonly kind: 'missingLastUpdateId' }
  | { readonly kind: 'lastUpdateIdString' }
  | { readonly kind: 'bidsNotArray' }
  | { readonly kind: 'tradeGap' }
  | { readonly kind: 'millisecondTimes' };

export interface ServedRequest {
  readonly endpoint: RestEndpoint | undefined;
  readonly path: string;
  /** The fault applied (undefined: forwarded unchanged). */
  readonly fault: RestFault | undefined;
  /** The status answered (0: never answered, a hang). */
  status: number;
  readonly atMs: number;
  /** What the onRequest hook returned for it. */
  hook: unknown;
}

export interface RestFaultFrontOptions {
  /** The real server's base URL (http://host:port). */
  readonly upstream: string;
  readonly port?: number;
  /** Awaited when a request arrives, before it is answered; its result is kept in the log entry. */
  readonly onRequest?: (endpoint: RestEndpoint, fault: RestFault | undefined) => Promise<unknown>;
}

export interface RestFaultFront {
  readonly url: string;
  readonly log: readonly ServedRequest[];
  /** Appends faults to an endpoint's script (each applies to one request, in order). */
  script(endpoint: RestEndpoint, ...faults: RestFault[]): void;
  /** Faults of an endpoint's script not consumed yet (both endpoints when omitted). */
  pending(endpoint?: RestEndpoint): number;
  /** Drops the remaining faults (of one endpoint, or all). */
  clear(endpoint?: RestEndpoint): void;
  /** Fetches /api/v3/depth from upstream now and keeps it as the body of later `stale` faults. */
  captureStale(symbol: string, limit: number): Promise<bigint>;
  /** The largest lastUpdateId and trade id the upstream answered with so far (faulted answers included). */
  readonly seen: { maxLastUpdateId: bigint; maxTradeId: bigint };
  stop(): Promise<void>;
}

const GARBAGE = '{"lastUpdateId": 12, "bids": [[';

export function describeFault(fault: RestFault | undefined): string {
  if (fault === undefined) return 'pass';
  if (fault.kind === 'status')
    return `HTTP ${fault.status}${fault.retryAfterSeconds !== undefined ? ` Retry-After ${fault.retryAfterSeconds}` : ''}`;
  return fault.kind;
}

interface UpstreamReply {
  status: number;
  body: string;
  headers: Record<string, string>;
}

/** The body of a fault that rewrites a good upstream answer (or the answer itself for other faults). Pure. */
export function rewrite(endpoint: RestEndpoint, fault: RestFault | undefined, body: string): string {
  if (fault === undefined) return body;
  if (endpoint === 'depth') {
    const d = JSON.parse(body) as {
      lastUpdateId?: unknown;
      bids: [string, string][];
      asks: [string, string][];
    };
    switch (fault.kind) {
      case 'crossed':
        if (d.bids[0] && d.asks[0]) d.bids[0] = [d.asks[0][0], d.bids[0][1]];
        break;
      case 'missingLastUpdateId':
        delete d.lastUpdateId;
        break;
      case 'lastUpdateIdString':
        d.lastUpdateId = String(d.lastUpdateId);
        break;
      case 'bidsNotArray':
        (d as unknown as Record<string, unknown>).bids = Object.fromEntries(d.bids);
        break;
      default:
        throw new Error(`fault ${fault.kind} does not apply to depth`);
    }
    return JSON.stringify(d);
  }
  const trades = JSON.parse(body) as Array<{ id: number; time: number }>;
  switch (fault.kind) {
    case 'tradeGap':
      if (trades.length >= 3) trades.splice(trades.length - 2, 1);
      break;
    case 'millisecondTimes':
      for (const t of trades) t.time = Math.floor(t.time / 1000);
      break;
    default:
      throw new Error(`fault ${fault.kind} does not apply to trades`);
  }
  return JSON.stringify(trades);
}

export async function startRestFaultFront(options: RestFaultFrontOptions): Promise<RestFaultFront> {
  const upstream = options.upstream.replace(/\/$/, '');
  const scripts: Record<RestEndpoint, RestFault[]> = { depth: [], trades: [] };
  const log: ServedRequest[] = [];
  const sockets = new Set<Socket>();
  const seen = { maxLastUpdateId: -1n, maxTradeId: -1n };
  let staleBody: string | undefined;

  const fetchUpstream = async (path: string, timeUnit: string | undefined): Promise<UpstreamReply> => {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (timeUnit !== undefined) headers['X-MBX-TIME-UNIT'] = timeUnit;
    const res = await fetch(upstream + path, { headers });
    const body = await res.text();
    if (res.status === 200) {
      try {
        const parsed = JSON.parse(body) as unknown;
        if (Array.isArray(parsed)) {
          for (const t of parsed as Array<{ id: number }>)
            if (BigInt(t.id) > seen.maxTradeId) seen.maxTradeId = BigInt(t.id);
        } else {
          const id = (parsed as { lastUpdateId?: number }).lastUpdateId;
          if (typeof id === 'number' && BigInt(id) > seen.maxLastUpdateId) seen.maxLastUpdateId = BigInt(id);
        }
      } catch {
        // not JSON: passed on as it is
      }
    }
    const out: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      if (k === 'content-type' || k === 'retry-after') out[k] = v;
    });
    return { status: res.status, body, headers: out };
  };

  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const endpoint: RestEndpoint | undefined =
        url.pathname === '/api/v3/depth' ? 'depth' : url.pathname === '/api/v3/trades' ? 'trades' : undefined;
      const fault = endpoint === undefined ? undefined : scripts[endpoint].shift();
      const entry: ServedRequest = {
        endpoint,
        path: req.url ?? '',
        fault,
        status: 0,
        atMs: Date.now(),
        hook: undefined,
      };
      log.push(entry);
      const send = (status: number, body: string, headers: Record<string, string> = {}): void => {
        entry.status = status;
        if (res.destroyed) return;
        res.writeHead(status, { 'Content-Type': 'application/json;charset=UTF-8', ...headers });
        res.end(body);
      };
      try {
        if (endpoint !== undefined && options.onRequest !== undefined)
          entry.hook = await options.onRequest(endpoint, fault);
        if (fault?.kind === 'hang') return; // held open: the client's deadline must fire
        if (fault?.kind === 'status') {
          const headers: Record<string, string> = {};
          if (fault.retryAfterSeconds !== undefined) headers['Retry-After'] = String(fault.retryAfterSeconds);
          send(fault.status, JSON.stringify({ code: -1003, msg: `Injected HTTP ${fault.status}.` }), headers);
          return;
        }
        if (fault?.kind === 'garbage') {
          send(200, GARBAGE);
          return;
        }
        if (fault?.kind === 'stale') {
          if (staleBody === undefined) throw new Error('a stale fault without captureStale() first');
          send(200, staleBody);
          return;
        }
        const h = req.headers['x-mbx-time-unit'];
        const reply = await fetchUpstream(req.url ?? '/', Array.isArray(h) ? h[0] : h);
        const body =
          reply.status === 200 && endpoint !== undefined ? rewrite(endpoint, fault, reply.body) : reply.body;
        send(reply.status, body, reply.headers);
      } catch (err) {
        send(502, JSON.stringify({ code: -1000, msg: `rest-faults front: ${(err as Error).message}` }));
      }
    })();
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    seen,
    script(endpoint, ...faults) {
      scripts[endpoint].push(...faults);
    },
    pending(endpoint) {
      return endpoint === undefined ? scripts.depth.length + scripts.trades.length : scripts[endpoint].length;
    },
    clear(endpoint) {
      if (endpoint === undefined || endpoint === 'depth') scripts.depth.length = 0;
      if (endpoint === undefined || endpoint === 'trades') scripts.trades.length = 0;
    },
    async captureStale(symbol, limit) {
      const reply = await fetchUpstream(`/api/v3/depth?symbol=${symbol}&limit=${limit}`, undefined);
      if (reply.status !== 200) throw new Error(`captureStale: HTTP ${reply.status}: ${reply.body}`);
      staleBody = reply.body;
      return BigInt((JSON.parse(reply.body) as { lastUpdateId: number }).lastUpdateId);
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
