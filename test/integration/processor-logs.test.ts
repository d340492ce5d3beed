import fs from 'node:fs';
import { expect } from 'chai';
import { simulate } from '../../src/replay/simulator';
import { PipelinePublisher, waitForCheckpoints } from '../helpers/exactness';
import { startPipeline, type Pipeline } from '../helpers/pipeline';

// Issue 14, logs once: in production (no logging.file) a processor logs JSON lines to stderr, which the daemon
// drains. KCL's DrainChildSTDERRTask logs each such line at ERROR and also prints it (KCL #772), so every line
// reached the container log twice, once as an ERROR. properties/logback.xml turns that logger off: through the real
// daemon, each processor line appears once, as the JSON the processor wrote, at its own level.

describe('processor logs through the real daemon (no logging.file): each line once, as JSON', function () {
  this.timeout(240_000);
  let pipeline: Pipeline | undefined;
  let publisher: PipelinePublisher | undefined;

  after(async () => {
    publisher?.close();
    await pipeline?.stop();
  });

  it('no ERROR re-logging of child stderr; every processor line is a JSON line with its level, once', async () => {
    pipeline = await startPipeline({
      shards: { trade: 1, bestbidask: 1, depth: 1 },
      symbols: ['BTCUSDT'],
      label: 'processor-logs',
      extraYaml: `reanchor:\n  enabled: false\n`,
      // The production shape: no logging.file, the processors log to stderr (info and above).
      logging: { level: 'info', toFile: false },
    });
    const p = pipeline;
    expect(fs.readFileSync(p.configFile, 'utf8')).to.not.match(/processor\.log/);
    const daemon = p.startDaemon('trade');
    publisher = new PipelinePublisher(p);
    const events = [
      ...simulate({ seed: 5, symbols: ['BTCUSDT'], startTimeUs: 1_762_000_000_000_000n }, 2000),
    ];
    await publisher.publish(events.filter((e) => e.stream === 'trade'));
    await waitForCheckpoints(p, publisher.latest, 150_000);
    await daemon.stop();

    const lines = fs.readFileSync(daemon.logFile, 'utf8').split('\n');
    const relogged = lines.filter((l) => l.includes('Received error line from subprocess'));
    expect(relogged.slice(0, 3), 'child stderr lines re-logged at ERROR by the daemon').to.deep.equal([]);
    const processorLines = lines.filter((l) => l.startsWith('{') && l.includes('"role":"processor"'));
    // At least the child's start-up and shutdown lines (info).
    expect(processorLines.length, 'processor lines in the daemon log').to.be.at.least(2);
    for (const line of processorLines) {
      const entry = JSON.parse(line) as { level?: string; message?: string };
      expect(['error', 'warn', 'info'], line).to.include(entry.level);
    }
    // Once each: a JSON line embedded in another line would be its second copy.
    const embedded = lines.filter((l) => !l.startsWith('{') && l.includes('"role":"processor"'));
    expect(embedded.slice(0, 3)).to.deep.equal([]);
    process.stderr.write(
      `      processor-logs: ${processorLines.length} processor lines, each once; 0 re-logged at ERROR\n`,
    );
  });
});
