import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { repoRoot } from './paths';

// The daemon's side of the KCL MultiLang protocol (../shared/docs/kcl-multilang.md), played against the real
// record-processor child `node dist/src/cli/main.js --config <yaml> process --stream <kind>` over its
// stdin/stdout, as the Java MultiLangDaemon drives it. Shared by the protocol and fault tests.

export const CLI = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');

export type Json = Record<string, unknown>;

/** The only shapes a child may write: the daemon skips a line with an extra field and deadlocks. */
export function isProtocolLine(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Json;
  const keys = Object.keys(v).sort().join(',');
  if (v.action === 'status') return keys === 'action,responseFor' && typeof v.responseFor === 'string';
  if (v.action === 'checkpoint') {
    const seqOk = v.sequenceNumber === null || typeof v.sequenceNumber === 'string';
    return (
      seqOk &&
      (keys === 'action,sequenceNumber' ||
        (keys === 'action,sequenceNumber,subSequenceNumber' && typeof v.subSequenceNumber === 'number'))
    );
  }
  return false;
}

/** One record of a processRecords action, as the daemon writes it (data base64; de-aggregated KPL records
 * share their Kinesis record's sequence number and carry subSequenceNumber 0..n-1). */
export function kinesisRecord(
  sequenceNumber: string,
  data: Buffer,
  partitionKey: string,
  subSequenceNumber = 0,
  approximateArrivalTimestamp = 1_700_000_000_000,
): Json {
  return {
    data: data.toString('base64'),
    partitionKey,
    sequenceNumber,
    approximateArrivalTimestamp,
    subSequenceNumber,
    action: 'record',
  };
}

export interface ProcessRecordsOutcome {
  /** The sequence numbers the child checkpointed during the action, in order. */
  readonly checkpoints: (string | null)[];
}

/** Plays the daemon's side of the MultiLang protocol with one child process. */
export class MultiLangDriver {
  readonly child: ChildProcessWithoutNullStreams;
  /** Every stdout line, blank ones included, as written. */
  readonly rawLines: string[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private partial = '';
  private readonly messages: unknown[] = [];
  private waiter: (() => void) | undefined;

  /**
   * @param configFile the child's --config
   * @param cwd        the child's working directory (relative log files land there)
   * @param stream     the child's --stream kind (trade, bestbidask, depth)
   */
  constructor(configFile: string, cwd: string, stream = 'trade') {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of ['CONFIG_FILE', 'REDIS_HOST', 'REDIS_PORT', 'AWS_REGION']) delete env[name];
    this.child = spawn(process.execPath, [CLI, '--config', configFile, 'process', '--stream', stream], {
      cwd,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => this.onStdout(chunk));
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    // Writing to a child that already exited must not crash the test run.
    this.child.stdin.on('error', () => undefined);
  }

  private onStdout(chunk: string): void {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      this.rawLines.push(line);
      // aws-kcl writes "\n<json>\n": blank lines carry nothing.
      if (line.trim() === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = { notJson: line };
      }
      this.messages.push(parsed);
    }
    this.waiter?.();
  }

  send(message: Json): void {
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
  }

  /** The next non-blank stdout line, parsed. */
  async next(timeoutMs = 10000): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0 || this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `no protocol line from the child within ${timeoutMs} ms (exit ${this.child.exitCode}); stderr:\n${this.stderr}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 50));
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.messages.shift();
  }

  /** Sends initialize and expects its status. */
  async initialize(shardId: string, sequenceNumber = 'TRIM_HORIZON', timeoutMs = 10000): Promise<void> {
    this.send({ action: 'initialize', shardId, sequenceNumber, subSequenceNumber: 0 });
    const reply = await this.next(timeoutMs);
    expect(reply, 'initialize answered').to.deep.equal({ action: 'status', responseFor: 'initialize' });
  }

  /**
   * Sends one processRecords action and plays the daemon until its status: every checkpoint the child asks for
   * is recorded successfully (error null). Any other line fails. Returns the checkpoints asked for.
   */
  async processRecords(
    records: readonly Json[],
    timeoutMs = 10000,
    millisBehindLatest = 0,
  ): Promise<ProcessRecordsOutcome> {
    this.send({ action: 'processRecords', records, millisBehindLatest });
    const checkpoints: (string | null)[] = [];
    for (;;) {
      const line = await this.next(timeoutMs);
      const v = line as Json;
      if (isProtocolLine(line) && v.action === 'checkpoint') {
        const seq = v.sequenceNumber as string | null;
        checkpoints.push(seq);
        this.send({ action: 'checkpoint', sequenceNumber: seq, subSequenceNumber: 0, error: null });
        continue;
      }
      expect(line, 'the status of processRecords').to.deep.equal({
        action: 'status',
        responseFor: 'processRecords',
      });
      return { checkpoints };
    }
  }

  /** Resolves with the exit, or rejects if the child is still running after timeoutMs. */
  async exit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`child still running after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Every line written to stdout was blank or a protocol JSON object, and no partial line is left. */
  expectOnlyProtocolOnStdout(): void {
    expect(this.partial, 'unterminated stdout line').to.equal('');
    for (const line of this.rawLines) {
      if (line.trim() === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      expect(isProtocolLine(parsed), `not a protocol line on stdout: ${line}`).to.equal(true);
    }
  }

  /** The non-blank stdout lines, parsed, in order. */
  transcript(): unknown[] {
    return this.rawLines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as unknown);
  }

  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}
