import type { Command } from 'commander';

/**
 * `etcron snapshot restore`: a new data dir for `etcron store` from a snapshot in etcd 3.4's
 * format (from `etcdctl snapshot save`, against etcron or a real etcd). Start every member of the
 * new cluster from its own restore of the same file, as with etcdctl.
 */
export function registerSnapshotCommand(program: Command): void {
  const snapshot = program.command('snapshot').description('restore a store data dir from an etcd-format snapshot');
  snapshot
    .command('restore')
    .description('write a new data dir from a snapshot file (etcdctl snapshot save, from etcron or etcd)')
    .argument('<file>', 'the snapshot file')
    .requiredOption('--data-dir <dir>', 'the data dir to create; must not hold a member yet')
    .option('--skip-hash-check', 'accept a file without (or with a wrong) sha256 trailer, such as a copied member/snap/db')
    .action(async (file: string, options: { dataDir: string; skipHashCheck?: boolean }) => {
      // The store's modules load only for this command: other commands stay quick.
      const { restoreSnapshot } = await import('../store/snapshot/etcd-restore.js');
      const summary = restoreSnapshot(file, options.dataDir, { skipHashCheck: options.skipHashCheck === true });
      process.stdout.write(
        `restored ${summary.rows} key revisions and ${summary.leases} leases at revision ${summary.revision}` +
        `${summary.compactRevision > 0 ? ` (compacted at ${summary.compactRevision})` : ''} into ${options.dataDir}\n`,
      );
    });
}
