import type { WorkerOptions } from './options.js';

export interface WorkerStats {
  /** Claim txns sent, by outcome. */
  readonly claimTxns: number;
  readonly claimsWon: number;
  readonly runsStarted: number;
  /** Finish reports refused by the fence compare (the lock was no longer ours). */
  readonly reportsRejected: number;
}

export interface WorkerHandle {
  readonly id: string;
  stats(): WorkerStats;
  stop(): Promise<void>;
}

export async function startWorker(options: WorkerOptions): Promise<WorkerHandle> {
  void options;
  throw new Error('startWorker: not implemented yet');
}
