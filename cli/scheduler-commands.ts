import type { Command } from 'commander';
import { registerJobCommands } from './scheduler-job-commands.js';
import { registerInspectCommands } from './scheduler-inspect-commands.js';
import { registerDaemonCommands } from './scheduler-daemon-commands.js';

/**
 * Registers master, worker, job, locks and workers commands (issue #5). Client commands speak to
 * a master's HTTP API (--api / ETCRON_API); master and worker speak to the store (--endpoints /
 * ETCRON_ENDPOINTS).
 */
export function registerSchedulerCommands(program: Command): void {
  registerDaemonCommands(program);
  registerJobCommands(program);
  registerInspectCommands(program);
}
