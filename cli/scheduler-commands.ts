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
  program.addHelpText('after', `
Environment:
  ETCRON_ENDPOINTS  store endpoints for master and worker (default 127.0.0.1:2379)
  ETCRON_API        seed master API URL(s) for job, locks, workers, status; comma-separated:
                    the first that answers lists every live master, then reads take turns
                    over them and requests skip unreachable ones (default http://127.0.0.1:7070)
  ETCRON_USER, ETCRON_PASSWORD  store user for the API when the store has auth enabled
  ETCRON_API_TOKEN  bearer token for a master started with --api-token

Exit codes: 0 ok; 1 usage or connection error; 2 refused (invalid spec, already exists,
conflict); 3 not found.`);
}
