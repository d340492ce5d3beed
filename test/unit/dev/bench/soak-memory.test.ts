import { expect } from 'chai';
import {
  checkMemory,
  descendants,
  parseStat,
  parseVmRssKiB,
  sampleRoles,
  type ProcInfo,
} from '../../../../src/dev/bench/soak-memory';

const proc = (pid: number, ppid: number, cmdline: string, rssKiB: number): ProcInfo => ({
  pid,
  ppid,
  comm: cmdline.split(' ')[0] ?? '',
  cmdline,
  rssKiB,
});

describe('soak memory', function () {
  it('parses /proc stat and status, comm with spaces and parentheses included', function () {
    expect(parseStat('1234 (java) S 1200 1234 1200 0 -1')).to.deep.equal({
      pid: 1234,
      comm: 'java',
      ppid: 1200,
    });
    expect(parseStat('77 (a (b) c) R 5 77 5')).to.deep.equal({ pid: 77, comm: 'a (b) c', ppid: 5 });
    expect(parseStat('garbage')).to.equal(undefined);
    expect(parseVmRssKiB('Name:\tnode\nVmPeak:\t  100 kB\nVmRSS:\t   65536 kB\n')).to.equal(65536);
    expect(parseVmRssKiB('Name:\tkthreadd\n')).to.equal(0);
  });

  const table: ProcInfo[] = [
    proc(10, 1, 'node kinesis-mock/main.js', 100 * 1024),
    proc(11, 10, 'helper', 10 * 1024),
    proc(20, 1, 'java -cp x software.amazon.kinesis.multilang.MultiLangDaemon', 200 * 1024),
    proc(21, 20, 'node /repo/dist/src/cli/main.js --config c.yaml process --stream trade', 70 * 1024),
    proc(22, 20, 'node /repo/dist/src/cli/main.js --config c.yaml process --stream trade', 60 * 1024),
    proc(23, 21, 'something else', 1024),
  ];

  it('finds descendants and the processor children of each daemon', function () {
    expect(
      descendants(table, 20)
        .map((p) => p.pid)
        .sort(),
    ).to.deep.equal([21, 22, 23]);
    const s = sampleRoles(table, [
      { name: 'kinesis-mock', kind: 'kinesis-mock', pid: 10, withDescendants: true },
      { name: 'kcl-trade', kind: 'kcl-daemon', pid: 20, withDescendants: false },
      { name: 'gone', kind: 'sidecar', pid: 99, withDescendants: true },
    ]);
    expect(s.map((x) => [x.name, x.kind, x.rssMiB])).to.deep.equal([
      ['kinesis-mock', 'kinesis-mock', 110],
      ['kcl-trade', 'kcl-daemon', 200],
      ['processor-trade', 'processor', 70],
      ['processor-trade-2', 'processor', 60],
    ]);
  });

  it('checks end <= start x factor + slack per process, and fails a process missing at either sample', function () {
    const at = (name: string, pid: number, rssMiB: number) => ({ name, kind: 'k', pids: [pid], rssMiB });
    const verdicts = checkMemory(
      [at('a', 1, 100), at('b', 2, 100), at('c', 3, 100)],
      [at('a', 1, 214), at('b', 2, 215), at('d', 4, 1)],
      { factor: 1.5, slackMiB: 64 },
    );
    const by = Object.fromEntries(verdicts.map((v) => [v.name, v]));
    expect(by.a).to.include({ ok: true, limitMiB: 214, restarted: false });
    expect(by.b?.ok).to.equal(false);
    expect(by.b?.problem).to.match(/215\.0 MiB > 214\.0 MiB/);
    expect(by.c).to.include({ ok: false, problem: 'not running at the end sample' });
    expect(by.d).to.include({ ok: false, problem: 'not running at the start sample' });
    const restarted = checkMemory([at('p', 5, 50)], [at('p', 6, 40)], { factor: 1.5, slackMiB: 64 });
    expect(restarted[0]).to.include({ ok: true, restarted: true });
  });
});
