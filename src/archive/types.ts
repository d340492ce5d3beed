// The event archive (issue 16): what a Kinesis Data Firehose delivery stream per Kinesis stream leaves in S3 (or a
// local directory in the same layout), read back as the SBE frames the processors saw. This file is the contract
// between the archive readers/writers (src/archive/) and its consumers (the dataset builder, src/dataset/).
//
// Layout under the archive root (a directory, or s3://bucket/prefix):
//   <stream name>/YYYY/MM/DD/HH/<delivery stream>-1-YYYY-MM-DD-HH-MM-SS-<id>[.gz]
// (UTC hour of arrival, as Firehose writes it). An object is the stream's records' bytes back to back; Firehose
// de-aggregates KPL records, so an object is a sequence of self-delimiting SBE frames, optionally gzip-compressed.

/** One SBE frame read from an archive object, with where it was. */
export interface ArchiveFrame {
  /** The Kinesis stream name (the first path segment under the root). */
  readonly stream: string;
  /** The object's key relative to the archive root (or its path relative to the directory). */
  readonly key: string;
  /** Byte offset of the frame in the object's (decompressed) content. */
  readonly offset: number;
  readonly bytes: Buffer;
}

/** Bytes of an object that are not a readable frame: counted and reported, never silently dropped. */
export interface ArchiveDamage {
  readonly stream: string;
  readonly key: string;
  /** Byte offset in the object's (decompressed) content where the unreadable bytes start. */
  readonly offset: number;
  /** Stable code, e.g. TRUNCATED, CORRUPT_GZIP, SCHEMA_MISMATCH (the decoder's codes where it applies). */
  readonly code: string;
  /** A sentence naming what was wrong. */
  readonly error: string;
  /** How many bytes were skipped. */
  readonly bytes: number;
}

export type ArchiveItem =
  | { readonly kind: 'frame'; readonly frame: ArchiveFrame }
  | { readonly kind: 'damage'; readonly damage: ArchiveDamage };

export interface ArchiveReader {
  /** The stream names present under the root. */
  streams(): Promise<string[]>;
  /**
   * The frames of one stream's objects whose arrival hour overlaps [fromMs, toMs] (ms since the epoch), objects in
   * key order (arrival order), frames in object order. Damage is yielded where it is found, and the read goes on.
   */
  read(stream: string, fromMs: number, toMs: number): AsyncIterable<ArchiveItem>;
}
