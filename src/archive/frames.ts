import zlib from 'node:zlib';
import { walkFrames } from '../sbe/decoder';
import type { ArchiveItem } from './types';

// One archive object's bytes -> its SBE frames, with offsets. The frames are walked as the processors walk a
// record (src/sbe walkFrames): a damaged frame whose extent is known is one damage item and the walk goes on after
// it; otherwise the rest of the object, from that frame on, is one damage item with the decoder's code
// (TRUNCATED, SCHEMA_MISMATCH, ...). An empty object is one EMPTY damage item. No I/O.

/** Where an object came from: stamped on every item. */
export interface ObjectRef {
  readonly stream: string;
  readonly key: string;
}

/** The items of an object's (decompressed) content. */
export function* framesOf(ref: ObjectRef, content: Buffer): Generator<ArchiveItem, void, undefined> {
  for (const item of walkFrames(content)) {
    if (item.ok) {
      yield {
        kind: 'frame',
        frame: {
          stream: ref.stream,
          key: ref.key,
          offset: item.start,
          bytes: content.subarray(item.start, item.end),
        },
      };
    } else {
      yield {
        kind: 'damage',
        damage: {
          stream: ref.stream,
          key: ref.key,
          offset: item.start,
          code: item.error.code,
          error: `${ref.key} at offset ${item.start}: ${item.error.message}`,
          bytes: item.end - item.start,
        },
      };
    }
  }
}

/** The output of a gunzip, and its error when the input was not a whole, valid gzip stream. */
export interface Gunzipped {
  /** What zlib produced before it failed (everything when it did not). */
  readonly content: Buffer;
  readonly error: Error | undefined;
}

/** Gunzips keeping the output produced before an error (a truncated or corrupt gzip). */
export function gunzipPartial(compressed: Buffer): Promise<Gunzipped> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const gunzip = zlib.createGunzip();
    gunzip.on('data', (chunk: Buffer) => chunks.push(chunk));
    gunzip.on('error', (error) => resolve({ content: Buffer.concat(chunks), error }));
    gunzip.on('end', () => resolve({ content: Buffer.concat(chunks), error: undefined }));
    gunzip.end(compressed);
  });
}

/**
 * The items of an object as stored (gunzipped first when `gzip`). A gzip that fails part-way yields the frames of
 * what it produced before failing, up to the first one that does not decode, then one CORRUPT_GZIP damage item at the offset (in the decompressed
 * content) where the readable output stops, 0 when there was none; its `bytes` is the compressed object's size.
 */
export async function* objectItems(
  ref: ObjectRef,
  stored: Buffer,
  gzip: boolean,
): AsyncGenerator<ArchiveItem, void, undefined> {
  if (!gzip) {
    yield* framesOf(ref, stored);
    return;
  }
  const { content, error } = await gunzipPartial(stored);
  if (error === undefined) {
    yield* framesOf(ref, content);
    return;
  }
  // Whole frames of the partial output; its unreadable tail is the gzip's damage, not a frame's.
  let readable = 0;
  if (content.length > 0) {
    for (const item of framesOf(ref, content)) {
      if (item.kind !== 'frame') break;
      readable = item.frame.offset + item.frame.bytes.length;
      yield item;
    }
  }
  yield {
    kind: 'damage',
    damage: {
      stream: ref.stream,
      key: ref.key,
      offset: readable,
      code: 'CORRUPT_GZIP',
      error:
        `${ref.key}: the gzip content (${stored.length} bytes) is corrupt or truncated after ${readable} readable ` +
        `decompressed bytes: ${error.message}`,
      bytes: stored.length,
    },
  };
}
