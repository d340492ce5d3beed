// The archive's object keys, in the layout a Kinesis Data Firehose delivery stream writes (src/archive/types.ts,
// docs/deployment.md): `<stream>/YYYY/MM/DD/HH/<delivery>-1-YYYY-MM-DD-HH-MM-SS-<id>[.gz]`, all UTC, the time being
// the arrival time of the object's first record. Pure: no I/O.

const HOUR_MS = 3_600_000;

/** An archive root: a local directory, or a bucket and a key prefix ('' or ending with '/'). */
export type ArchiveRoot =
  | { readonly kind: 'dir'; readonly path: string }
  | { readonly kind: 's3'; readonly bucket: string; readonly prefix: string };

export interface ObjectKeyParts {
  /** The Kinesis stream name: the first path segment. */
  readonly stream: string;
  /** The Firehose delivery stream name. */
  readonly delivery: string;
  /** Arrival time of the object's first record, ms since the epoch (second precision in the key). */
  readonly timeMs: number;
  /** The object's id (Firehose: a random string); no '/'. */
  readonly id: string;
  readonly gzip: boolean;
}

const two = (n: number): string => String(n).padStart(2, '0');

/** `YYYY/MM/DD/HH/` of a time (UTC). */
export function hourPath(timeMs: number): string {
  const d = new Date(timeMs);
  return `${d.getUTCFullYear()}/${two(d.getUTCMonth() + 1)}/${two(d.getUTCDate())}/${two(d.getUTCHours())}/`;
}

const NAME_SEGMENT = /^[A-Za-z0-9._-]+$/;

/** The key of an object, relative to the archive root. */
export function objectKey(parts: ObjectKeyParts): string {
  for (const [what, value] of [
    ['stream', parts.stream],
    ['delivery', parts.delivery],
    ['id', parts.id],
  ] as const) {
    if (!NAME_SEGMENT.test(value))
      throw new RangeError(`${what} "${value}" must match ${NAME_SEGMENT.source}`);
  }
  if (!Number.isFinite(parts.timeMs)) throw new RangeError(`timeMs must be finite, got ${parts.timeMs}`);
  const d = new Date(parts.timeMs);
  const stamp =
    `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}-` +
    `${two(d.getUTCHours())}-${two(d.getUTCMinutes())}-${two(d.getUTCSeconds())}`;
  return `${parts.stream}/${hourPath(parts.timeMs)}${parts.delivery}-1-${stamp}-${parts.id}${parts.gzip ? '.gz' : ''}`;
}

const KEY_PATTERN =
  /^([^/]+)\/(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})\/(.+)-\d+-(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-([^/]+?)(\.gz)?$/;

/** A key parsed back; undefined when it is not in the layout (such objects are not archive objects). */
export function parseObjectKey(key: string): (ObjectKeyParts & { readonly hourMs: number }) | undefined {
  const m = KEY_PATTERN.exec(key);
  if (m === null) return undefined;
  const n = (i: number): number => Number(m[i]);
  const hourMs = Date.UTC(n(2), n(3) - 1, n(4), n(5));
  const timeMs = Date.UTC(n(7), n(8) - 1, n(9), n(10), n(11), n(12));
  // The name's time must be a real date in the folder's hour (Date.UTC rolls 2026-02-30 over to March).
  if (hourPath(hourMs) !== `${m[2]}/${m[3]}/${m[4]}/${m[5]}/`) return undefined;
  if (Math.floor(timeMs / HOUR_MS) * HOUR_MS !== hourMs || n(11) > 59 || n(12) > 59) return undefined;
  return {
    stream: m[1] as string,
    delivery: m[6] as string,
    timeMs,
    id: m[13] as string,
    gzip: m[14] !== undefined,
    hourMs,
  };
}

// The hours an archive can hold: 4-digit years (what hourPath gives and the key pattern accepts).
const FIRST_HOUR_MS = Date.UTC(1000, 0, 1);
const LAST_HOUR_MS = Date.UTC(9999, 11, 31, 23);

/**
 * The first and last hour folders (`YYYY/MM/DD/HH/`) to read for the records that arrived in [fromMs, toMs],
 * padded with one hour on each side: an object's hour is the arrival time of its first record, so a record that
 * arrived in the range can sit in an object of the hour before (Firehose buffers up to its interval), and a
 * record's own event time is earlier than its arrival. Readers filter by event time themselves. Undefined when the
 * range is empty. The folders compare as strings in time order (every field zero-padded).
 */
export function hourSpan(
  fromMs: number,
  toMs: number,
): { readonly first: string; readonly last: string } | undefined {
  if (!Number.isFinite(fromMs) || !Number.isFinite(toMs))
    throw new RangeError(`fromMs and toMs must be finite, got ${fromMs} and ${toMs}`);
  if (toMs < fromMs) return undefined;
  const first = Math.max(FIRST_HOUR_MS, (Math.floor(fromMs / HOUR_MS) - 1) * HOUR_MS);
  const last = Math.min(LAST_HOUR_MS, (Math.floor(toMs / HOUR_MS) + 1) * HOUR_MS);
  if (last < first) return undefined;
  return { first: hourPath(first), last: hourPath(last) };
}

/** `s3://bucket[/prefix]` or a directory path. The S3 prefix comes back '' or ending with '/'. */
export function parseArchiveRoot(text: string): ArchiveRoot {
  if (text.trim() === '') throw new RangeError('the archive root is empty');
  if (!text.startsWith('s3://')) return { kind: 'dir', path: text };
  const rest = text.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
    throw new RangeError(`"${text}": "${bucket}" is not an S3 bucket name`);
  const raw = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
  return { kind: 's3', bucket, prefix: raw === '' ? '' : `${raw}/` };
}
