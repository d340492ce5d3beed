import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import { Command } from 'commander';
import { parseFrameText, registerDecode, runDecode } from '../../../src/cli/commands/decode';
import { loadVectors } from './fixtures';

async function run(
  lines: string[],
): Promise<{ result: { lines: number; failed: number }; out: Record<string, unknown>[]; raw: string }> {
  const input = new PassThrough();
  const output = new PassThrough();
  const chunks: Buffer[] = [];
  output.on('data', (c: Buffer) => chunks.push(c));
  input.end(lines.join('\n'));
  const result = await runDecode(input, output);
  output.end();
  await once(output, 'end');
  const raw = Buffer.concat(chunks).toString('utf8');
  const out = raw
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { result, out, raw };
}

describe('aggregator decode', () => {
  const vectors = loadVectors();
  const [a1, a2] = vectors;

  it('decodes hex lines (with or without 0x) to {"line":N, ...expected}', async () => {
    const { result, out } = await run(
      vectors.map((v, i) => (i % 2 === 0 ? v.hex : `0x${v.hex.toUpperCase()}`)),
    );
    expect(result).to.deep.equal({ lines: vectors.length, failed: 0 });
    expect(out).to.deep.equal(vectors.map((v, i) => ({ line: i + 1, ...v.expected })));
    expect(Object.keys(out[0]!)[0]).to.equal('line');
  });

  it('decodes base64 lines', async () => {
    const { result, out } = await run(vectors.map((v) => Buffer.from(v.hex, 'hex').toString('base64')));
    expect(result.failed).to.equal(0);
    expect(out.map(({ line: _l, ...rest }) => rest)).to.deep.equal(vectors.map((v) => v.expected));
  });

  it('skips blank lines but keeps physical line numbers; a bad line in the middle does not stop the rest', async () => {
    const { result, out } = await run([
      '',
      a1!.hex,
      '   ',
      'zz-not-a-frame',
      `${a2!.hex}\r`,
      a1!.hex.slice(0, 40),
      '',
    ]);
    expect(result).to.deep.equal({ lines: 4, failed: 2 });
    expect(out.map((o) => o.line)).to.deep.equal([2, 4, 5, 6]);
    expect(out[0]).to.deep.equal({ line: 2, ...a1!.expected });
    expect(out[1]).to.deep.include({ line: 4 });
    expect((out[1]!.error as Record<string, unknown>).code).to.equal('BAD_INPUT');
    expect(out[2]).to.deep.equal({ line: 5, ...a2!.expected });
    expect(out[3]!.error).to.deep.equal({
      code: 'TRUNCATED',
      message: 'truncated frame: need 18 bytes for TradesStreamEvent.root at offset 8, have 12',
      offset: 8,
      field: 'TradesStreamEvent.root',
    });
  });

  it('reports bytes after the first frame as TRAILING_BYTES, and a decode error with code, offset and field', async () => {
    const bad = Buffer.from(a1!.hex, 'hex');
    bad.writeUInt16LE(9999, 2);
    const { result, out } = await run([a1!.hex + a2!.hex, a1!.hex + '00', bad.toString('hex'), '0x']);
    expect(result).to.deep.equal({ lines: 4, failed: 4 });
    expect(out[0]!.error).to.deep.include({ code: 'TRAILING_BYTES', offset: 90, field: 'frame' });
    expect(out[1]!.error).to.deep.include({ code: 'TRAILING_BYTES', offset: 90 });
    expect(out[2]!.error).to.deep.include({
      code: 'UNKNOWN_TEMPLATE',
      offset: 2,
      field: 'header.templateId',
    });
    expect(out[3]!.error).to.deep.include({ code: 'EMPTY', offset: 0 });
  });

  it('writes exactly one JSON line per frame line and nothing else', async () => {
    const { raw } = await run([a1!.hex, 'xyz', a2!.hex]);
    expect(raw.endsWith('\n')).to.equal(true);
    expect(raw.split('\n')).to.have.length(4);
  });

  describe('parseFrameText', () => {
    it('accepts hex, 0x hex and canonical base64; prefers hex when both read', () => {
      expect(parseFrameText('0a0B').toString('hex')).to.equal('0a0b');
      expect(parseFrameText('0X0a').toString('hex')).to.equal('0a');
      expect(parseFrameText('AQID').toString('hex')).to.equal('010203');
      expect(parseFrameText('AQI=').toString('hex')).to.equal('0102');
      expect(parseFrameText('12345678').toString('hex')).to.equal('12345678');
    });
    for (const bad of ['abc', 'AQID=', 'AQI', 'AQJ=', 'AQ==x', 'A-_B', 'AQ ID']) {
      it(`rejects ${JSON.stringify(bad)}`, () => {
        expect(() => parseFrameText(bad)).to.throw(/neither hex/);
      });
    }
    for (const bad of ['0x123', '0xzz', '0xAQID']) {
      it(`rejects ${JSON.stringify(bad)} (0x promises hex)`, () => {
        expect(() => parseFrameText(bad)).to.throw(/starts with 0x/);
      });
    }
  });

  it('registers the decode command', () => {
    const program = new Command();
    registerDecode(program);
    const cmd = program.commands.find((c) => c.name() === 'decode');
    expect(cmd?.description()).to.equal('decode SBE frames, one per line on stdin, hex or base64');
  });
});
