import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { objectItems } from './frames';
import { hourPrefixes, parseArchiveRoot, parseObjectKey, type ArchiveRoot } from './layout';
import type { ArchiveItem, ArchiveReader } from './types';

// Reads the archive (src/archive/types.ts) from a local directory or from s3://bucket/prefix. Objects are listed per
// hour prefix and read one at a time, in key order (the arrival order): memory holds one object and one hour's
// keys, never the whole archive. Names under the root that are not in the layout (a writer's temporary files, an
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
  /** The keys under a prefix ending with '/', sorted. */
  list(prefix: string): Promise<string[]>;
  get(key: string): Promise<Buffer>;
}

class ObjectReader implements ArchiveReader {
  constructor(private readonly store: ObjectStore) {}

  streams(): Promise<string[]> {
    return this.store.topLevel();
  }

  async *read(stream: string, fromMs: number, toMs: number): AsyncIterable<ArchiveItem> {
    if (stream === '' || stream.includes('/')) throw new RangeError(`"${stream}" is not a stream name`);
    for (const prefix of hourPrefixes(stream, fromMs, toMs)) {
      for (const key of await this.store.list(prefix)) {
        const parts = parseObjectKey(key);
        if (parts === undefined || parts.stream !== stream) continue;
        const stored = await this.store.get(key);
        yield* objectItems({ stream, key }, stored, parts.gzip);
      }
    }
  }
}

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

  async list(prefix: string): Promise<string[]> {
    const entries = await fs.promises
      .readdir(path.join(this.dir, ...prefix.split('/')), { withFileTypes: true })
      .catch(emptyWhenMissing);
    return entries
      .filter((e) => e.isFile() && !e.name.startsWith('.'))
      .map((e) => `${prefix}${e.name}`)
      .sort();
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

  /** The keys under a prefix (relative to the root), every page. */
  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: `${this.prefix}${prefix}`,
          ...(token === undefined ? {} : { ContinuationToken: token }),
        }),
      );
      for (const o of out.Contents ?? []) {
        if (o.Key !== undefined && !o.Key.endsWith('/')) keys.push(o.Key.slice(this.prefix.length));
      }
      token = out.IsTruncated === true ? out.NextContinuationToken : undefined;
    } while (token !== undefined);
    return keys.sort();
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
