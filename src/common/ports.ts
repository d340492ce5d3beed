import fs from 'node:fs';
import net from 'node:net';

// Free TCP ports for the servers this project starts itself: the local stack and test servers (src/dev)
// and the dataset builder's scratch redis-server.

export interface PortRange {
  readonly low: number;
  readonly high: number;
}

/**
 * Where test and dev servers take their ports: below the kernel's ephemeral range, so that no outgoing
 * connection of another process (the KCL daemons open hundreds) can take a port between the moment it is
 * found free and the moment the server binds it. That race failed a CI run with EADDRINUSE. Pure.
 * `ephemeral` is the text of /proc/sys/net/ipv4/ip_local_port_range ("32768\t60999"); undefined (not
 * Linux) or a range that leaves no room on either side gives undefined: ask the kernel (port 0) instead.
 */
export function serverPortRange(ephemeral: string | undefined): PortRange | undefined {
  const bounds = ephemeral?.trim().split(/\s+/).map(Number);
  if (bounds === undefined || bounds.length !== 2 || !bounds.every(Number.isInteger)) return undefined;
  const [low, high] = bounds as [number, number];
  const minSpan = 1000;
  if (low - 1 - 10000 >= minSpan) return { low: 10000, high: low - 1 };
  if (65535 - (high + 1) >= minSpan) return { low: high + 1, high: 65535 };
  return undefined;
}

function readEphemeralRange(): string | undefined {
  try {
    return fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
  } catch {
    return undefined;
  }
}

/** Binds port (0: the kernel picks) on host and resolves the bound port, or undefined when it is taken. */
function tryBind(host: string, port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(undefined);
      else reject(err);
    });
    server.listen({ port, host, exclusive: true }, () => {
      const address = server.address();
      const bound = address !== null && typeof address !== 'string' ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}

/** Whether nothing holds port on the IPv6 wildcard (also IPv4's on Linux); a machine without IPv6 has nothing there. */
async function freeOnEveryInterface(port: number): Promise<boolean> {
  try {
    return (await tryBind('::', port)) !== undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL') return true;
    throw err;
  }
}

// Ports this process already handed out: two servers started side by side never get the same one.
const handedOut = new Set<number>();

/**
 * A TCP port free on loopback and on every interface (kinesis-mock and dynalite listen on all of them),
 * taken below the ephemeral range where the system allows (see serverPortRange). Still racy against other
 * processes choosing ports the same way, so callers treat a failed bind as an error worth a clear message.
 */
export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  const range = serverPortRange(readEphemeralRange());
  for (let attempt = 0; attempt < 200; attempt++) {
    const candidate =
      range === undefined ? 0 : range.low + Math.floor(Math.random() * (range.high - range.low + 1));
    if (handedOut.has(candidate)) continue;
    const port = await tryBind(host, candidate);
    if (port === undefined || handedOut.has(port)) continue;
    if (host !== '::' && !(await freeOnEveryInterface(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free TCP port found on ${host} after 200 attempts`);
}
