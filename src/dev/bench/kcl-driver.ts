import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

// Plays the KCL MultiLangDaemon's side of the protocol with one processor child, for benchmarks: the
// child receives the same JSON lines the real daemon would send, and every checkpoint is acknowledged.

type Json = Record<string, unknown>;

export interface DriverRecord {
  readonly data: string;
  readonly partitionKey: string;
  readonly sequenceNumber: string;
  readonly subSequenceNumber: number;
  readonly approximateArrivalTimestamp: number;
}

export class KclDriver {
  private readonly child: ChildProcessWithoutNullStreams;
  private partial = '';
  private readonly queue: Json[] = [];
  private wake: (() => void) | undefined;
  private stderr = '';

  constructor(cli: string, configFile: string, stream: string) {
    this.child = spawn(process.execPath, [cli, '--config', configFile, 'process', '--stream', stream], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => {
      const lines = (this.partial + chunk).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') this.queue.push(JSON.parse(line) as Json);
      this.wake?.();
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk: string) => (this.stderr += chunk));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private send(message: Json): void {
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
  }

  private async next(timeoutMs = 30000): Promise<Json> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (Date.now() > deadline || this.child.exitCode !== null) {
        throw new Error(
          `processor gave no protocol line (exit ${this.child.exitCode}); stderr: ${this.stderr}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return this.queue.shift()!;
  }

  private async expectStatus(action: string): Promise<void> {
    const reply = await this.next();
    if (reply.action !== 'status' || reply.responseFor !== action) {
      throw new Error(`expected status for ${action}, got ${JSON.stringify(reply)}`);
    }
  }

  async initialize(shardId: string): Promise<void> {
    this.send({ action: 'initialize', shardId, sequenceNumber: 'TRIM_HORIZON', subSequenceNumber: 0 });
    await this.expectStatus('initialize');
  }

  /** One processRecords exchange: records in, the checkpoint acknowledged, the status back. */
  async processRecords(records: readonly DriverRecord[]): Promise<void> {
    this.send({
      action: 'processRecords',
      records: records.map((r) => ({ ...r, action: 'record' })),
      millisBehindLatest: 0,
    });
    for (;;) {
      const reply = await this.next();
      if (reply.action === 'checkpoint') {
        this.send({
          action: 'checkpoint',
          sequenceNumber: reply.sequenceNumber,
          subSequenceNumber: 0,
          error: null,
        });
        continue;
      }
      if (reply.action === 'status' && reply.responseFor === 'processRecords') return;
      throw new Error(`unexpected line during processRecords: ${JSON.stringify(reply)}`);
    }
  }

  /** Ends the child the way the daemon does: leaseLost, then stdin closed. */
  async close(): Promise<number | null> {
    this.send({ action: 'leaseLost' });
    await this.expectStatus('leaseLost');
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.stdin.end();
    return exited;
  }
}
