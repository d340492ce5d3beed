import { Writable } from 'node:stream';

// stdout belongs to the MultiLang protocol. This hands the real stdout to the protocol writer alone and
// reroutes every other write to process.stdout (a stray console.log in a dependency) to stderr, where the
// daemon logs it instead of misreading it as a protocol line.

export function claimStdoutForProtocol(): Writable {
  const stdout = process.stdout;
  const writeToFd1 = stdout.write.bind(stdout) as (
    chunk: string | Uint8Array,
    cb: (err?: Error | null) => void,
  ) => boolean;
  const protocolOut = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      writeToFd1(chunk, (err) => callback(err ?? null));
    },
  });
  const stderrWrite = process.stderr.write.bind(process.stderr);
  stdout.write = (chunk: string | Uint8Array, ...rest: unknown[]) => {
    const callback = rest.find((r): r is (err?: Error | null) => void => typeof r === 'function');
    return stderrWrite(chunk, callback);
  };
  return protocolOut;
}
