import { expect } from 'chai';
import { formatProgress, formatSummary, parseTimeOption } from '../../../src/cli/commands/dataset';
import type { BuildSummary } from '../../../src/dataset/builder';

// Issue 16: the option parsing, progress line and summary of `aggregator dataset build`. Pure.

describe('aggregator dataset build: options, progress and summary (issue 16)', () => {
  it('--from/--to: ms since the epoch or ISO 8601 with a zone; anything else names the option', () => {
    expect(parseTimeOption('--from', '1760000000000')).to.equal(1_760_000_000_000);
    expect(parseTimeOption('--from', '2026-01-02T03:04:05Z')).to.equal(Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(parseTimeOption('--to', '2026-01-02T03:04:05+01:00')).to.equal(Date.UTC(2026, 0, 2, 2, 4, 5));
    expect(() => parseTimeOption('--to', '2026-01-02T03:04:05')).to.throw(
      '--to must be ms since the epoch, an ISO 8601 time with a zone, now or a duration before now ' +
        '(e.g. 90s, 5m, 2h, 1d), got "2026-01-02T03:04:05"',
    );
    expect(() => parseTimeOption('--from', 'yesterday')).to.throw(/--from/);
  });

  it('--from/--to: now and a duration before now (s, m, h, d), from the one "now" given', () => {
    const now = 1_760_000_000_000;
    expect(parseTimeOption('--to', 'now', now)).to.equal(now);
    expect(parseTimeOption('--from', '90s', now)).to.equal(now - 90_000);
    expect(parseTimeOption('--from', '5m', now)).to.equal(now - 300_000);
    expect(parseTimeOption('--from', '2h', now)).to.equal(now - 7_200_000);
    expect(parseTimeOption('--from', '1d', now)).to.equal(now - 86_400_000);
    expect(parseTimeOption('--to', '0s', now)).to.equal(now);
    for (const bad of ['-90s', 'now-90s', '1.5m', '90S', '10ms']) {
      expect(() => parseTimeOption('--from', bad, now)).to.throw(/^--from must be/);
    }
  });

  it('progress: events, ticks with percentage, event rate, ETA from the ticks done', () => {
    expect(formatProgress({ events: 50_000, ticksDone: 25, ticksTotal: 100, elapsedMs: 10_000 })).to.equal(
      'events 50000 | ticks 25/100 (25%) | 5000 events/s | ETA 0m30s',
    );
    expect(formatProgress({ events: 0, ticksDone: 0, ticksTotal: 10, elapsedMs: 0 })).to.equal(
      'events 0 | ticks 0/10 (0%) | 0 events/s | ETA ?',
    );
  });

  it('summary: events per stream, dead-lettered frames per source and code, ticks, rows, seconds', () => {
    const summary: BuildSummary = {
      eventsByStream: { trade: 10, depth: 5 },
      applied: 14,
      otherSymbols: 1,
      rejected: [
        {
          kind: 'rejected',
          stream: 'trade',
          key: 'k',
          offset: 3,
          source: 'decode',
          code: 'TRUNCATED',
          error: 'e',
        },
        {
          kind: 'rejected',
          stream: 'trade',
          key: 'k',
          offset: 9,
          source: 'decode',
          code: 'TRUNCATED',
          error: 'e',
        },
      ],
      contained: [],
      late: 2,
      maxLatenessUs: 1500,
      ticks: 7,
      rows: 7,
      firstEventUs: 1,
      lastEventUs: 2,
      seconds: 1.25,
    };
    expect(formatSummary(summary, 'out.parquet')).to.deep.equal([
      'events per stream: trade 10, depth 5',
      'applied 14, other symbols 1, late 2 (max 1500 us behind)',
      'dead-lettered frames: 2 (decode:TRUNCATED 2); events of failed script calls: 0',
      'ticks 7, rows 7 -> out.parquet, 1.3 s',
    ]);
  });
});
