import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatDecimal } from '../../sbe/decimal';
import type { PriceLevel, TradeEntry } from '../../sbe/messages';
import { MarketSimulator } from '../../replay/simulator';
import type { SimulatedEvent, SimulatorOptions } from '../../replay/simulator';

// A local stand-in for Binance's REST market-data endpoints, consistent with a running MarketSimulator:
//   GET /api/v3/depth?symbol=&limit=   the simulator's book now (lastUpdateId = its book update id)
//   GET /api/v3/trades?symbol=&limit=  the most recent trades, from a bounded ring per symbol
// SimulatedExchange owns the simulator and generates ahead: every event the simulator has generated (its book change
// applied) is pulled into the exchange's own queue and its trades recorded at once, so the REST state always covers
// everything generated while next() hands the events out in order, the stream lagging the REST state as on the
// exchange. A snapshot taken at any moment therefore bridges the diffs that follow it (U <= lastUpdateId+1 <= u on
// the first diff with u > lastUpdateId). Faults can be injected for the next N requests, for tests.

export interface RecordedTrade extends TradeEntry {
  readonly timeUs: bigint;
}

export interface SimulatedExchangeOptions extends SimulatorOptions {
  /** Trades kept per symbol for /api/v3/trades (default 1000, the endpoint's maximum limit). */
  readonly tradeHistory?: number;
}

export class SimulatedExchange {
  readonly simulator: MarketSimulator;
  private readonly tradeHistory: number;
  private readonly trades = new Map<string, RecordedTrade[]>();
  private readonly ahead: SimulatedEvent[] = [];
  private aheadHead = 0;

  constructor(opts: SimulatedExchangeOptions) {
    this.simulator = new MarketSimulator(opts);
    this.tradeHistory = opts.tradeHistory ?? 1000;
    if (!(Number.isInteger(this.tradeHistory) && this.tradeHistory >= 1))
      throw new RangeError(`tradeHistory must be an integer >= 1, got ${this.tradeHistory}`);
    for (const s of this.simulator.symbols) this.trades.set(s, []);
  }

  get symbols(): readonly string[] {
    return this.simulator.symbols;
  }

  /** The next market event, in the simulator's order. */
  next(): SimulatedEvent {
    if (this.aheadHead >= this.ahead.length) {
      this.ahead.length = 0;
      this.aheadHead = 0;
      this.pull();
      while (this.simulator.pending > 0) this.pull();
    }
    return this.ahead[this.aheadHead++] as SimulatedEvent;
  }

  /** REST /api/v3/depth: the book now, including changes of generated events not yet returned by next(). */
  depth(symbol: string, limit: number): { lastUpdateId: bigint; bids: PriceLevel[]; asks: PriceLevel[] } {
    return this.simulator.depthSnapshot(symbol, limit);
  }

  /** REST /api/v3/trades: the `limit` most recent generated trades, oldest first. */
  recentTrades(symbol: string, limit: number): readonly RecordedTrade[] {
    const ring = this.trades.get(symbol);
    if (ring === undefined) throw new RangeError(`unknown symbol ${symbol}`);
    return ring.slice(Math.max(0, ring.length - limit));
  }

  hasSymbol(symbol: string): boolean {
    return this.trades.has(symbol);
  }

  private pull(): void {
    const ev = this.simulator.next();
    if (ev.message.message === 'TradesStreamEvent') {
      const ring = this.trades.get(ev.message.symbol);
      if (ring !== undefined) {
        for (const t of ev.message.trades) ring.push({ ...t, timeUs: ev.message.transactTime });
        if (ring.length > this.tradeHistory * 2) ring.splice(0, ring.length - this.tradeHistory);
      }
    }
    this.ahead.push(ev);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Faults

export type SimFault =
  /** Answer with this status (e.g. 500, 503, 429, 418), with a Retry-After header when given. */
  | { readonly kind: 'status'; readonly status: number; readonly retryAfterSeconds?: number }
  /** Answer correctly, but only after delayMs. */
  | { readonly kind: 'slow'; readonly delayMs: number }
  /** 200 with a body that is not JSON. */
  | { readonly kind: 'garbage' }
  /** Depth: best bid moved to the best ask's price or above. */
  | { readonly kind: 'crossed' }
  /** Depth: the first two bids swapped; trades: the first two swapped. */
  | { readonly kind: 'unsorted' }
  /** Depth: the second bid level replaced by a copy of the first. */
  | { readonly kind: 'duplicate' }
  /** Depth: one more level per side than asked; trades: one more trade. */
  | { readonly kind: 'tooMany' }
  /** Depth: no lastUpdateId. */
  | { readonly kind: 'missingLastUpdateId' }
  /** Trades: times in milliseconds whatever the X-MBX-TIME-UNIT header says. */
  | { readonly kind: 'millisecondTimes' };

export type SimEndpoint = 'depth' | 'trades';

/** Faults queued per endpoint (or for any endpoint), each applied to the next `times` matching requests. */
export class SimFaults {
  private readonly queue: { fault: SimFault; left: number; endpoint: SimEndpoint | undefined }[] = [];

  /** Applies `fault` to the next `times` requests (to `endpoint` only, when given). */
  add(fault: SimFault, times = 1, endpoint?: SimEndpoint): this {
    if (!(Number.isInteger(times) && times >= 1)) throw new RangeError(`times must be >= 1, got ${times}`);
    this.queue.push({ fault, left: times, endpoint });
    return this;
  }

  clear(): void {
    this.queue.length = 0;
  }

  get pending(): number {
    return this.queue.reduce((n, q) => n + q.left, 0);
  }

  /** The fault for this request, if any (consumed). */
  take(endpoint: SimEndpoint): SimFault | undefined {
    const i = this.queue.findIndex((q) => q.endpoint === undefined || q.endpoint === endpoint);
    const q = this.queue[i];
    if (q === undefined) return undefined;
    q.left--;
    if (q.left === 0) this.queue.splice(i, 1);
    return q.fault;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Server

export interface SimExchangeServerOptions {
  /** 0 lets the kernel choose. */
  readonly port: number;
  readonly host?: string;
  readonly exchange: SimulatedExchange;
  readonly faults?: SimFaults;
}

export interface SimExchangeServer {
  readonly url: string;
  readonly faults: SimFaults;
  /** Requests received: path, time-unit header, arrival (ms since the epoch) and the status answered (for tests:
   * e.g. counting what was sent during an exchange ban). */
  readonly requests: SimRequest[];
  stop(): Promise<void>;
}

export interface SimRequest {
  readonly path: string;
  readonly timeUnit: string | undefined;
  readonly atMs: number;
  status?: number;
}

interface Reply {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

const error = (status: number, code: number, msg: string): Reply => ({
  status,
  body: JSON.stringify({ code, msg }),
});

function levelsJson(levels: readonly PriceLevel[], pe: number, qe: number): [string, string][] {
  return levels.map((l) => [formatDecimal(l.priceMantissa, pe), formatDecimal(l.qtyMantissa, qe)]);
}

function parseLimit(raw: string | null, dflt: number, max: number): number | undefined {
  if (raw === null) return dflt;
  if (!/^\d+$/.test(raw)) return undefined;
  const n = Number(raw);
  return n >= 1 ? Math.min(n, max) : undefined;
}

function depthReply(
  ex: SimulatedExchange,
  symbol: string,
  limit: number,
  fault: SimFault | undefined,
): Reply {
  const sim = ex.simulator;
  const pe = sim.priceExponent;
  const qe = sim.qtyExponent;
  const book = ex.depth(symbol, limit + (fault?.kind === 'tooMany' ? 1 : 0));
  const bids = levelsJson(book.bids, pe, qe);
  const asks = levelsJson(book.asks, pe, qe);
  if (fault?.kind === 'crossed' && asks[0] !== undefined && bids[0] !== undefined)
    bids[0] = [asks[0][0], bids[0][1]];
  if (fault?.kind === 'unsorted' && bids.length >= 2)
    bids.splice(0, 2, bids[1] as [string, string], bids[0] as [string, string]);
  if (fault?.kind === 'duplicate' && bids[0] !== undefined && bids.length >= 2) bids[1] = bids[0];
  const body: Record<string, unknown> = { lastUpdateId: Number(book.lastUpdateId), bids, asks };
  if (fault?.kind === 'missingLastUpdateId') delete body.lastUpdateId;
  return { status: 200, body: JSON.stringify(body) };
}

function tradesReply(
  ex: SimulatedExchange,
  symbol: string,
  limit: number,
  micro: boolean,
  fault: SimFault | undefined,
): Reply {
  const sim = ex.simulator;
  const pe = sim.priceExponent;
  const qe = sim.qtyExponent;
  const ms = !micro || fault?.kind === 'millisecondTimes';
  const rows = ex.recentTrades(symbol, limit + (fault?.kind === 'tooMany' ? 1 : 0)).map((t) => ({
    id: Number(t.id),
    price: formatDecimal(t.priceMantissa, pe),
    qty: formatDecimal(t.qtyMantissa, qe),
    quoteQty: formatDecimal(t.priceMantissa * t.qtyMantissa, pe + qe),
    time: Number(ms ? t.timeUs / 1000n : t.timeUs),
    isBuyerMaker: t.isBuyerMaker,
    isBestMatch: true,
  }));
  if (fault?.kind === 'unsorted' && rows.length >= 2)
    rows.splice(0, 2, rows[1] as (typeof rows)[0], rows[0] as (typeof rows)[0]);
  return { status: 200, body: JSON.stringify(rows) };
}

function route(
  ex: SimulatedExchange,
  req: http.IncomingMessage,
  faults: SimFaults,
): { reply: Reply; delayMs: number } {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const endpoint: SimEndpoint | undefined =
    url.pathname === '/api/v3/depth' ? 'depth' : url.pathname === '/api/v3/trades' ? 'trades' : undefined;
  if (req.method !== 'GET') return { reply: error(405, -1000, 'Only GET.'), delayMs: 0 };
  if (endpoint === undefined) return { reply: error(404, -1000, 'Not found.'), delayMs: 0 };
  const symbol = url.searchParams.get('symbol');
  if (symbol === null)
    return { reply: error(400, -1102, "Mandatory parameter 'symbol' was not sent."), delayMs: 0 };
  if (!ex.hasSymbol(symbol)) return { reply: error(400, -1121, 'Invalid symbol.'), delayMs: 0 };
  const limit =
    endpoint === 'depth'
      ? parseLimit(url.searchParams.get('limit'), 100, 5000)
      : parseLimit(url.searchParams.get('limit'), 500, 1000);
  if (limit === undefined)
    return { reply: error(400, -1100, "Illegal characters found in parameter 'limit'."), delayMs: 0 };
  const fault = faults.take(endpoint);
  if (fault?.kind === 'status') {
    const headers: Record<string, string> = {};
    if (fault.retryAfterSeconds !== undefined) headers['Retry-After'] = String(fault.retryAfterSeconds);
    return {
      reply: { ...error(fault.status, -1003, `Injected HTTP ${fault.status}.`), headers },
      delayMs: 0,
    };
  }
  if (fault?.kind === 'garbage')
    return { reply: { status: 200, body: '{"lastUpdateId": 12, "bids": [[' }, delayMs: 0 };
  const delayMs = fault?.kind === 'slow' ? fault.delayMs : 0;
  const micro = String(req.headers['x-mbx-time-unit'] ?? '').toUpperCase() === 'MICROSECOND';
  // Answered from the state at arrival (what a slow network would deliver late).
  const reply =
    endpoint === 'depth'
      ? depthReply(ex, symbol, limit, fault)
      : tradesReply(ex, symbol, limit, micro, fault);
  return { reply, delayMs };
}

/** Serves the exchange's state over HTTP on 127.0.0.1 (or `host`). */
export async function startSimExchangeServer(opts: SimExchangeServerOptions): Promise<SimExchangeServer> {
  const faults = opts.faults ?? new SimFaults();
  const host = opts.host ?? '127.0.0.1';
  const timers = new Set<NodeJS.Timeout>();
  const requests: SimRequest[] = [];
  const server = http.createServer((req, res) => {
    const h = req.headers['x-mbx-time-unit'];
    const request: SimRequest = {
      path: req.url ?? '',
      timeUnit: Array.isArray(h) ? h[0] : h,
      atMs: Date.now(),
    };
    requests.push(request);
    let routed: { reply: Reply; delayMs: number };
    try {
      routed = route(opts.exchange, req, faults);
    } catch (err) {
      routed = { reply: error(500, -1000, (err as Error).message), delayMs: 0 };
    }
    request.status = routed.reply.status;
    const send = (): void => {
      if (res.destroyed) return;
      res.writeHead(routed.reply.status, {
        'Content-Type': 'application/json;charset=UTF-8',
        ...routed.reply.headers,
      });
      res.end(routed.reply.body);
    };
    if (routed.delayMs > 0) {
      const t = setTimeout(() => {
        timers.delete(t);
        send();
      }, routed.delayMs);
      timers.add(t);
    } else {
      send();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    faults,
    requests,
    stop: async () => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
