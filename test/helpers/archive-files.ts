import fs from 'node:fs';
import path from 'node:path';
import type { ArchiveItem, ArchiveReader } from '../../src/archive/types';

/** Every item a reader yields for a stream and range, in order. */
export async function readAll(
  reader: ArchiveReader,
  stream: string,
  fromMs: number,
  toMs: number,
): Promise<ArchiveItem[]> {
  const out: ArchiveItem[] = [];
  for await (const item of reader.read(stream, fromMs, toMs)) out.push(item);
  return out;
}

/** Every file under dir, as sorted '/'-separated paths relative to it (what an archive upload sends as keys). */
export function filesUnder(dir: string, rel = ''): string[] {
  return fs
    .readdirSync(path.join(dir, rel), { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory() ? filesUnder(dir, `${rel}${e.name}/`) : e.isFile() ? [`${rel}${e.name}`] : [],
    )
    .sort();
}
