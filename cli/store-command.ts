import type { Command } from 'commander';
import { FLAG_SPECS, FlagError, parseStoreFlags } from '../store/flags.js';

function storeHelp(): string {
  const lines = Object.entries(FLAG_SPECS).map(([flag, spec]) => `  --${flag.padEnd(30)} ${spec.help} (default "${spec.defaultValue}")`);
  return [
    'Usage: etcron store [etcd flags]',
    '',
    'Runs a member of the bundled etcd v3 compatible store. Takes etcd 3.4\'s flags with their',
    'meaning and defaults, as --flag value, --flag=value or -flag value, or as ETCD_* variables.',
    '',
    ...lines,
  ].join('\n');
}

/** Registers `etcron store` (issue #3). */
export function registerStoreCommand(program: Command): void {
  program
    .command('store')
    .description('run a member of the bundled etcd v3 compatible store (takes etcd\'s flags)')
    .helpOption(false)
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .argument('[flags...]')
    .action(async (args: string[]) => {
      if (args.includes('--help') || args.includes('-h') || args.includes('-help')) {
        process.stdout.write(`${storeHelp()}\n`);
        return;
      }
      let flags;
      try {
        flags = parseStoreFlags(args, process.env);
      } catch (err) {
        if (err instanceof FlagError) {
          process.stderr.write(`etcron store: ${err.message}\n`);
          process.exit(2);
        }
        throw err;
      }
      // The store (gRPC, SQLite) loads only when a member starts: other commands stay quick.
      const { startStore, startHeapTuning, DataInconsistencyError } = await import('../store/main.js');
      let running;
      try {
        running = await startStore(flags);
      } catch (err) {
        // Settings that only show at start (TLS files, the member's place in the cluster) are
        // reported like flag errors, as etcd prints them, without a stack.
        if (err instanceof FlagError || err instanceof DataInconsistencyError) {
          process.stderr.write(`etcron store: ${err.message}\n`);
          process.exit(1);
        }
        throw err;
      }
      startHeapTuning(running.logger.child({ component: 'heap' }));
      let stopping = false;
      const stop = (): void => {
        if (stopping) return;
        stopping = true;
        void running.close().then(() => process.exit(0));
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
}
