/**
 * Bounds on the core's queues. Each says where its number comes from.
 */

/**
 * ReadIndex requests a leader holds at once (waiting for a heartbeat round or for its first
 * commit). The server batches reads into one request per drain, so a few thousand is plenty;
 * past it requests are dropped and the client retries, like etcd's read loop on a timeout.
 */
export const readIndexPendingMax = 4096;

/**
 * Default bound on payload bytes a leader holds appended but not applied
 * (RaftConfig.maxUncommittedEntriesBytes). etcd leaves it unlimited; 64 MiB is about 40 requests
 * of etcd's 1.5 MiB maximum size, and keeps a leader with slow followers from growing without end.
 */
export const defaultMaxUncommittedEntriesBytes = 64 * 1024 * 1024;
