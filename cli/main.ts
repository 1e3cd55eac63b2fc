import { Command } from 'commander';
import { registerStoreCommand } from './store-command.js';
import { registerSchedulerCommands } from './scheduler-commands.js';
import { registerUpCommand } from './up-command.js';
import { registerSnapshotCommand } from './snapshot-command.js';

const program = new Command();
program
  .name('etcron')
  .description('A distributed cron scheduler with a bundled etcd v3 compatible store')
  .version('0.1.0')
  .showHelpAfterError();

registerStoreCommand(program);
registerSchedulerCommands(program);
registerUpCommand(program);
registerSnapshotCommand(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`etcron: ${message}\n`);
  process.exit(1);
});
