import type { Command } from 'commander';
import { runRecordProcessor } from '../../app/processor';
import { loadConfig, STREAM_KINDS } from '../../config/config';
import { taskIdOfThisProcess } from '../../config/task';
import { parseStreamKind } from './options';

// `aggregator process --stream <kind>`: the child the KCL MultiLangDaemon starts for each shard lease
// (src/app/processor.ts). Speaks the MultiLang protocol on stdin/stdout and nothing else on stdout: an invalid
// option or config is reported on stderr (exit 1) before the process starts.

export function registerProcess(program: Command): void {
  program
    // Hidden from --help: only the KCL daemon runs it (properties/*.properties `executableName`).
    .command('process', { hidden: true })
    .description(
      'KCL MultiLang record processor (started by the daemon, one per shard; speaks on stdin/stdout)',
    )
    .requiredOption('--stream <kind>', `stream kind: ${STREAM_KINDS.join(', ')}`)
    .action((options: { stream: string }) => {
      const kind = parseStreamKind(options.stream);
      const config = loadConfig(program.opts<{ config?: string }>().config, process.env);
      // Inherited from the daemon's environment: the task whose sidecar exports this child's metrics.
      runRecordProcessor({ config, kind, task: taskIdOfThisProcess() });
    });
}
