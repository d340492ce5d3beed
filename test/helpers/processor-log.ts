import fs from 'node:fs';
import path from 'node:path';
import type { Pipeline } from './pipeline';
import { waitUntil } from './pipeline';

// The processors' shared JSON log of a test pipeline (logging.file), read from a byte offset on.
//
// A processor logs 'batch stored' only after the daemon recorded the batch's checkpoint, so a lease table
// at the last published record does not mean the log lines of the last batches are written yet: tests that
// count logged batches after waiting for checkpoints wait for the log with waitForProcessorLog.

export interface ProcessorLogEntry {
  readonly message?: string;
  readonly pid?: number;
  readonly shard?: string;
  readonly stream?: string;
  readonly startingSequenceNumber?: string;
  readonly frames?: number;
  readonly handleMs?: number;
  readonly checkpoint?: string;
  readonly [field: string]: unknown;
}

export function processorLogFile(pipeline: Pipeline): string {
  return path.join(pipeline.dir, 'processor.log');
}

/** The log's size in bytes: the offset to read the lines written from now on. */
export function processorLogSize(pipeline: Pipeline): number {
  try {
    return fs.statSync(processorLogFile(pipeline)).size;
  } catch {
    return 0;
  }
}

/** The log's JSON lines from a byte offset on; a line still being written is skipped. */
export function processorLog(pipeline: Pipeline, fromOffset = 0): ProcessorLogEntry[] {
  const file = processorLogFile(pipeline);
  if (!fs.existsSync(file)) return [];
  const text = fs.readFileSync(file).subarray(fromOffset).toString('utf8');
  const out: ProcessorLogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as ProcessorLogEntry);
    } catch {
      // a line being written
    }
  }
  return out;
}

/** Frames of the 'batch stored' lines among `entries` that match `filter`. Pure. */
export function framesStored(
  entries: readonly ProcessorLogEntry[],
  filter: (entry: ProcessorLogEntry) => boolean = () => true,
): number {
  return entries
    .filter((e) => e.message === 'batch stored' && filter(e))
    .reduce((sum, e) => sum + (e.frames ?? 0), 0);
}

/**
 * Polls the log from `fromOffset` until `done(entries)` holds and returns the entries then; on timeout it
 * returns the last read, and the caller's assertions say what is missing.
 */
export async function waitForProcessorLog(
  pipeline: Pipeline,
  fromOffset: number,
  done: (entries: readonly ProcessorLogEntry[]) => boolean,
  timeoutMs: number,
): Promise<ProcessorLogEntry[]> {
  let entries: ProcessorLogEntry[] = [];
  await waitUntil(
    () => {
      entries = processorLog(pipeline, fromOffset);
      return Promise.resolve(done(entries));
    },
    timeoutMs,
    'the processor log',
  ).catch(() => undefined);
  return entries;
}
