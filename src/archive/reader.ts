import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { objectItems } from './frames';
import { hourSpan, parseArchiveRoot, parseObjectKey, type ArchiveRoot } from './layout';
import type { ArchiveItem, ArchiveReader } from './types';

// Reads the archive (src/archive/types.ts) from a local directory or from s3://bucket/prefix. Objects are listed
// hour by hour and read one at a time, in key order (the arrival order): memory holds one object and one hour's
// keys, never the whole archive. Only the hours that exist are visited (a directory walk pruned by the range; one
// S3 listing from the first hour on, stopped past the last), so a range of years costs what the archive holds, not
// a listing per hour of the range. Names under the root that are not in the layout (a writer's temporary files, an
// S3 console's folder markers) are not archive objects and are skipped.

export interface S3ReaderOptions {
  /** Absent: the SDK's own resolution (AWS_REGION, the profile); the CLI passes the config's aws.region. */
  readonly region?: string;
  /** An S3-compatible endpoint (an emulator); absent: AWS. */
  readonly endpoint?: string;
  /** Path-style URLs (http://host/bucket/key): what emulators need. Default: true when an endpoint is given. */
  readonly forcePathStyle?: boolean;
  /** Absent: the SDK's default chain (environment, profile, container or instance role). */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
}

export type ArchiveReaderOptions = S3ReaderOptions;

/** A reader of a directory path or an `s3://bucket/prefix` root. */
export function createArchiveReader(
  root: string | ArchiveRoot,
  options: ArchiveReaderOptions = {},
): ArchiveReader {
  const parsed = typeof root === 'string' ? parseArchiveRoot(root) : root;
  if (parsed.kind === 'dir') return new ObjectReader(new DirectoryStore(parsed.path));
  return new ObjectReader(new S3Store(parsed.bucket, parsed.prefix, options));
}

/** Where objects are: keys relative to the archive root, '/'-separated. */
interface ObjectStore {
  /** The first-level names (streams). */
  topLevel(): Promise<string[]>;
  /**
   * The keys of a stream's hour folders from `first` to `last` (`YYYY/MM/DD/HH/`, inclusive), one sorted list per
   * hour that holds objects, in hour order.
   */
  hourKeys(stream: string, first: string, last: string): AsyncIterable<string[]>;
  get(key: string): Promise<Buffer>;
}

class ObjectReader implements ArchiveReader {
  constructor(private readonly store: ObjectStore) {}

  streams(): Promise<string[]> {
    return this.store.topLevel();
  }

  async *read(stream: string, fromMs: number, toMs: number): AsyncIterable<ArchiveItem> {
    if (stream === '' || stream.includes('/')) throw new RangeError(`"${stream}" is not a stream name`);
    const span = hourSpan(fromMs, toMs);
    if (span === undefined) return;
    for await (const keys of this.store.hourKeys(stream, span.first, span.last)) {
      for (const key of keys) {
        const parts = parseObjectKey(key);
        if (parts === undefined || parts.stream !== stream) continue;
        const stored = await this.store.get(key);
        yield* objectItems({ stream, key }, stored, parts.gzip);
      }
    }
  }
}

/** `YYYY/MM/DD/HH/`: the hour folder under a stream. */
const HOUR_FOLDER = '0000/00/00/00/';

const emptyWhenMissing = (err: unknown): never[] => {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
  throw err;
};

class DirectoryStore implements ObjectStore {
  constructor(private readonly dir: string) {}

  async topLevel(): Promise<string[]> {
    const entries = await fs.promises.readdir(this.dir, { withFileTypes: true }).catch(emptyWhenMissing);
    return entries
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
  }

  async *hourKeys(stream: string, first: string, last: string): AsyncIterable<string[]> {
    yield* this.walk(`${stream}/`, '', first, last);
  }

  /** Folder levels below the stream: YYYY, MM, DD, HH; `rel` is the part of the hour folder walked so far. */
  private async *walk(base: string, rel: string, first: string, last: string): AsyncIterable<string[]> {
    const entries = await fs.promises
      .readdir(path.join(this.dir, ...`${base}${rel}`.split('/')), { withFileTypes: true })
      .catch(emptyWhenMissing);
    if (rel.length === HOUR_FOLDER.length) {
      const keys = entries
        .filter((e) => e.isFile() && !e.name.startsWith('.'))
        .map((e) => `${base}${rel}${e.name}`)
        .sort();
      if (keys.length > 0) yield keys;
      return;
    }
    const width = rel === '' ? 4 : 2;
    const names = entries
      .filter((e) => e.isDirectory() && e.name.length === width && /^\d+$/.test(e.name))
      .map((e) => e.name)
      .sort();
    for (const name of names) {
      const next = `${rel}${name}/`;
      // Outside the span at this level: nothing below can be inside it.
      if (next < first.slice(0, next.length) || next > last.slice(0, next.length)) continue;
      yield* this.walk(base, next, first, last);
    }
  }

  get(key: string): Promise<Buffer> {
    return fs.promises.readFile(path.join(this.dir, ...key.split('/')));
  }
}

class S3Store implements ObjectStore {
  private readonly client: S3Client;

  constructor(
    private readonly bucket: string,
    /** '' or ending with '/'. */
    private readonly prefix: string,
    options: S3ReaderOptions,
  ) {
    this.client = new S3Client({
      ...(options.region === undefined ? {} : { region: options.region }),
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      // A timeout must fail the call (the SDK default only logs a warning and waits forever).
      requestHandler: new NodeHttpHandler({
        connectionTimeout: 5000,
        requestTimeout: 60000,
        throwOnRequestTimeout: true,
      }),
      maxAttempts: 5,
    });
  }

  /**
   * A skip scan rather than a Delimiter listing (s3rver 3.7 answers a Delimiter listing of nested keys with
   * nothing): one key at a time, starting after `<stream>0` ('0' follows '/'), which skips every key of the stream
   * just found. One request per stream.
   */
  async topLevel(): Promise<string[]> {
    const streams: string[] = [];
    let after: string | undefined;
    for (;;) {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix,
          MaxKeys: 1,
          ...(after === undefined ? {} : { StartAfter: after }),
        }),
      );
      const key = out.Contents?.[0]?.Key;
      if (key === undefined) break;
      const rest = key.slice(this.prefix.length);
      const slash = rest.indexOf('/');
      if (slash > 0) streams.push(rest.slice(0, slash));
      after = slash < 0 ? key : `${this.prefix}${rest.slice(0, slash)}0`;
    }
    return streams.sort();
  }

  /**
   * One listing of the stream's keys, starting after `<stream>/<first>` (every key of that hour sorts after it)
   * and stopped at the first key past the last hour: requests in proportion to the objects, not to the hours.
   */
  async *hourKeys(stream: string, first: string, last: string): AsyncIterable<string[]> {
    const base = `${stream}/`;
    let token: string | undefined;
    let hour: string | undefined;
    let keys: string[] = [];
    do {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: `${this.prefix}${base}`,
          ...(token === undefined
            ? { StartAfter: `${this.prefix}${base}${first}` }
            : { ContinuationToken: token }),
        }),
      );
      for (const o of out.Contents ?? []) {
        if (o.Key === undefined || o.Key.endsWith('/')) continue;
        const key = o.Key.slice(this.prefix.length);
        const keyHour = key.slice(base.length, base.length + HOUR_FOLDER.length);
        if (keyHour > last) {
          if (keys.length > 0) yield keys.sort();
          return;
        }
        if (keyHour !== hour) {
          if (keys.length > 0) yield keys.sort();
          hour = keyHour;
          keys = [];
        }
        keys.push(key);
      }
      token = out.IsTruncated === true ? out.NextContinuationToken : undefined;
    } while (token !== undefined);
    if (keys.length > 0) yield keys.sort();
  }

  async get(key: string): Promise<Buffer> {
    const out = await this.client.send(
      new GetObjectCommand({ Bucket: this.bucket, Key: `${this.prefix}${key}` }),
    );
    if (out.Body === undefined)
      throw new Error(`s3://${this.bucket}/${this.prefix}${key}: GetObject returned no body`);
    return Buffer.from(await out.Body.transformToByteArray());
  }
}
