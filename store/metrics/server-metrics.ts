import { Counter, exponentialBuckets, Histogram } from './registry.js';

/**
 * The member's event counters and latency histograms under etcd's metric names. They are
 * process-wide, as etcd's are (one member per process in production); values that the server
 * already knows (indexes, leader, database size) are read at scrape time instead.
 */
export const serverMetrics = {
  /** etcd_server_proposals_failed_total: proposals that timed out or were dropped. */
  proposalsFailed: new Counter(),
  /** etcd_server_leader_changes_seen_total. */
  leaderChanges: new Counter(),
  /** etcd_disk_wal_fsync_duration_seconds: etcd's buckets, 1 ms to 8 s. */
  walFsyncSeconds: new Histogram(exponentialBuckets(0.001, 2, 14)),
  /** etcd_disk_backend_commit_duration_seconds: one SQLite transaction. */
  backendCommitSeconds: new Histogram(exponentialBuckets(0.001, 2, 14)),
};
