import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { objectKey } from './layout';

// Writes one stream's frames into a local directory in the layout a Firehose delivery stream leaves in S3
// (src/archive/types.ts), buffering like Firehose: the frames are appended to the current object, which is written
// when it reaches `maxBytes`, when `intervalMs` has passed since its first frame, when the next frame arrives in
// another UTC hour, and at close(). An object is written whole to a temporary file (a dot-name the readers skip)
// and renamed into place, so a reader never sees half an object. Synchronous file writes: the writer is fed from
// the producer's acknowledgement path, and an object is a few MiB at most.

export const DEFAULT_ARCHIVE_MAX_BYTES = 5 * 1024 * 1024;
export const DEFAULT_ARCHIVE_INTERVAL_MS = 60_000;

export interface ArchiveWriterOptions {
  /** The archive root directory (created when absent). */
  readonly dir: string;
  /** The Kinesis stream name: the objects' first path segment. */
  readonly stream: string;
  /** The delivery stream name in the object names (default `<stream>-archive`). */
  readonly delivery?: string;
  /** Gzip each object (`.gz` keys). */
  readonly gzip?: boolean;
  /** Buffer size hint: an object is written once its frames reach this many bytes (default 5 MiB). */
  readonly maxBytes?: number;
  /** Buffer interval hint: an object is written this long after its first frame at the latest (default 60 s). */
  readonly intervalMs?: number;
  /** Check the interval on a timer (unref'd) as well as on each append (default true). */
  readonly timer?: boolean;
  /** Arrival clock, ms since the epoch (default Date.now). Injected for tests. */
  readonly nowMs?: () => number;
}

export interface ArchiveWriterStats {
  readonly objects: number;
  readonly frames: number;
  /** Frame bytes (before compression). */
  readonly bytes: number;
}

export class ArchiveWriter {
  private readonly delivery: string;
  private readonly gzip: boolean;
  private readonly maxBytes: number;
  private readonly intervalMs: number;
  private readonly nowMs: () => number;
  private readonly timer: NodeJS.Timeout | undefined;
  private frames: Buffer[] = [];
  private size = 0;
  /** Arrival time of the current object's first frame. */
  private firstMs = 0;
  private sequence = 0;
  private closed = false;
  private objects = 0;
  private frameCount = 0;
  private frameBytes = 0;
  /** Keys of the objects written, in order. */
  readonly written: string[] = [];

  constructor(private readonly options: ArchiveWriterOptions) {
    this.delivery = options.delivery ?? `${options.stream}-archive`;
    this.gzip = options.gzip ?? false;
    this.maxBytes = options.maxBytes ?? DEFAULT_ARCHIVE_MAX_BYTES;
    this.intervalMs = options.intervalMs ?? DEFAULT_ARCHIVE_INTERVAL_MS;
    this.nowMs = options.nowMs ?? Date.now;
    if (!(Number.isInteger(this.maxBytes) && this.maxBytes >= 1))
      throw new RangeError(`maxBytes must be a positive integer, got ${this.maxBytes}`);
    if (!(this.intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${this.intervalMs}`);
    // Checks the key parts now rather than at the first write.
    objectKey({ stream: options.stream, delivery: this.delivery, timeMs: 0, id: 'x', gzip: false });
    fs.mkdirSync(options.dir, { recursive: true });
    if (options.timer ?? true) {
      this.timer = setInterval(() => this.flushIfDue(), Math.min(1000, this.intervalMs));
      this.timer.unref();
    }
  }

  /** Appends one frame that arrived now; writes the current object first when it is due. */
  append(frame: Buffer): void {
    if (this.closed) throw new Error(`the archive writer of stream ${this.options.stream} is closed`);
    const now = this.nowMs();
    if (this.frames.length > 0 && Math.floor(now / 3_600_000) !== Math.floor(this.firstMs / 3_600_000))
      this.flush();
    this.flushIfDue(now);
    if (this.frames.length === 0) this.firstMs = now;
    this.frames.push(frame);
    this.size += frame.length;
    this.frameCount++;
    this.frameBytes += frame.length;
    if (this.size >= this.maxBytes) this.flush();
  }

  /** Writes the current object if its interval has passed. */
  flushIfDue(now = this.nowMs()): void {
    if (this.frames.length > 0 && now - this.firstMs >= this.intervalMs) this.flush();
  }

  /** Writes the current object (if it has frames). */
  flush(): void {
    if (this.frames.length === 0) return;
    const content = Buffer.concat(this.frames, this.size);
    // Sortable within a second (ms, then a counter), then random like Firehose's: key order is arrival order.
    const id =
      `${String(this.firstMs % 1000).padStart(3, '0')}${String(this.sequence++ % 1_000_000).padStart(6, '0')}-` +
      randomBytes(4).toString('hex');
    const key = objectKey({
      stream: this.options.stream,
      delivery: this.delivery,
      timeMs: this.firstMs,
      id,
      gzip: this.gzip,
    });
    const file = path.join(this.options.dir, ...key.split('/'));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
    fs.writeFileSync(tmp, this.gzip ? zlib.gzipSync(content) : content);
    fs.renameSync(tmp, file);
    this.frames = [];
    this.size = 0;
    this.objects++;
    this.written.push(key);
  }

  /** Writes what is buffered and stops the timer. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  get stats(): ArchiveWriterStats {
    return { objects: this.objects, frames: this.frameCount, bytes: this.frameBytes };
  }
}
