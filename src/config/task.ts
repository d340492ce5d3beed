import os from 'node:os';
import { ConfigError } from './errors';

// The task identity: which ECS task (or, locally, which group of processes started together) a process belongs to.
// The three KCL daemons, the processor children they spawn and the sidecar of one task must agree on it, and two
// tasks must differ. A sidecar's /metrics exports the processor reports of its own task only, so that every
// processor's metrics are scraped exactly once across the fleet.
//
// AGGREGATOR_TASK_ID when set, else the hostname: in the ECS awsvpc network mode every container of a task shares
// the task's hostname (its ENI name), unique per task, and a single-container task (`launch.sh all`) has one
// hostname anyway. A processor child inherits its daemon's environment (the daemon starts it with its own), so
// the variable reaches it. Read at the edge (the CLI) like the rest of the config.

export const TASK_ID_ENV = 'AGGREGATOR_TASK_ID';

const TASK_ID_PATTERN = /^[A-Za-z0-9._:@/-]{1,128}$/;

/** The task identity from AGGREGATOR_TASK_ID (blank: unset), else the hostname. Pure. */
export function resolveTaskId(env: Readonly<Record<string, string | undefined>>, hostname: string): string {
  const value = (env[TASK_ID_ENV] ?? '').trim();
  if (value === '') return hostname;
  if (!TASK_ID_PATTERN.test(value)) {
    throw new ConfigError(
      TASK_ID_ENV,
      `expected 1 to 128 characters among A-Z a-z 0-9 . _ : @ / -, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** This process's task identity (its environment and host), read by each command at the edge. */
export function taskIdOfThisProcess(): string {
  return resolveTaskId(process.env, os.hostname());
}
