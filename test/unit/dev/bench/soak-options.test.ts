import { expect } from 'chai';
import {
  DEFAULT_DURATION_SECONDS,
  DEFAULT_MEMORY_BOUND,
  DEFAULT_RATE,
  defaultWarmupSeconds,
  parseSoakOptions,
  SoakUsageError,
} from '../../../../src/dev/bench/soak-options';

describe('soak options', function () {
  it('defaults to the long variant: Binance-like rate for 600 s, warm-up 30 s, memory bound 1.5x + 64 MiB', function () {
    const o = parseSoakOptions([], {}, '/r.json');
    expect(o.rate).to.equal(DEFAULT_RATE);
    expect(o.durationSeconds).to.equal(DEFAULT_DURATION_SECONDS);
    expect(o.warmupSeconds).to.equal(30);
    expect(o.memory).to.deep.equal(DEFAULT_MEMORY_BOUND);
    expect(o.reportFile).to.equal('/r.json');
    expect(o.recordMode).to.equal('kpl');
    expect(o.symbol).to.equal('BTCUSDT');
    expect(o.keepLogs).to.equal(false);
  });

  it('reads the environment, and flags win over it (--x v and --x=v)', function () {
    const env = { SOAK_RATE: '500', SOAK_DURATION: '45', SOAK_KEEP_LOGS: '1' };
    const fromEnv = parseSoakOptions([], env, '/r.json');
    expect(fromEnv.rate).to.equal(500);
    expect(fromEnv.durationSeconds).to.equal(45);
    expect(fromEnv.warmupSeconds).to.equal(9);
    expect(fromEnv.keepLogs).to.equal(true);
    const flags = parseSoakOptions(
      ['--rate', '1000', '--duration=20', '--warmup', '2', '--report', 'x.json'],
      env,
      '/r.json',
    );
    expect(flags.rate).to.equal(1000);
    expect(flags.durationSeconds).to.equal(20);
    expect(flags.warmupSeconds).to.equal(2);
    expect(flags.reportFile).to.equal('x.json');
  });

  it('rejects bad values, naming the option', function () {
    const bad: [string[], RegExp][] = [
      [['--rate', '0'], /--rate/],
      [['--rate', 'fast'], /--rate/],
      [['--duration', '-5'], /--duration/],
      [['--duration', '10', '--warmup', '10'], /--warmup/],
      [['--record-mode', 'bulk'], /--record-mode/],
      [['--symbol', 'btc'], /--symbol/],
      [['--rss-factor', '0.5'], /--rss-factor/],
      [['--nope'], /unknown option/],
      [['--rate'], /needs a value/],
    ];
    for (const [argv, message] of bad) {
      expect(() => parseSoakOptions(argv, {}, '/r.json'), argv.join(' '))
        .to.throw(SoakUsageError)
        .with.property('message')
        .that.matches(message);
    }
  });

  it('warm-up defaults to 20 % of the run, at most 30 s', function () {
    expect(defaultWarmupSeconds(600)).to.equal(30);
    expect(defaultWarmupSeconds(45)).to.equal(9);
    expect(defaultWarmupSeconds(10)).to.equal(2);
  });
});
