import fs from 'node:fs';

/** Where a PartialFile is written until it is committed. */
export function partialPath(path: string): string {
  return `${path}.partial`;
}

/**
 * A file written under `<path>.partial` and moved to `<path>` by commit, so that nothing under the final name is
 * ever half written: a failed writer calls abort, which removes the partial file (an earlier `<path>` stays as it
 * was). Opening truncates the partial file and throws at once when it cannot be created. Synchronous.
 */
export class PartialFile {
  readonly partialPath: string;
  private readonly fd: number;
  private closed = false;
  private committed = false;

  constructor(readonly path: string) {
    this.partialPath = partialPath(path);
    this.fd = fs.openSync(this.partialPath, 'w');
  }

  /** Appends all of data (writeFileSync on a descriptor writes at its position until every byte is out). */
  write(data: string | Uint8Array): void {
    fs.writeFileSync(this.fd, data);
  }

  /** Closes the partial file and renames it to its final name. */
  commit(): void {
    this.close();
    fs.renameSync(this.partialPath, this.path);
    this.committed = true;
  }

  /** Closes and removes the partial file. Idempotent; a no-op after commit. */
  abort(): void {
    if (this.committed) return;
    this.close();
    fs.rmSync(this.partialPath, { force: true });
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}
