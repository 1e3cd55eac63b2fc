import type { Etcd3 } from 'etcd3';
import { putOp, runTxn } from '../etcd/txn.js';
import { encodeRecord, type RunRecord } from './records.js';
import { reasonClass, schedulerMetrics } from '../metrics/scheduler-metrics.js';

/**
 * Records a slot that will not run (skipped by overlap policy or pause, missed past its deadline or
 * over the catch-up cap). create_revision == 0: if a worker claimed the slot first, nothing is written.
 */
export async function recordNotStarted(client: Etcd3, key: string, record: RunRecord): Promise<boolean> {
  const outcome = await runTxn(client, {
    compare: [{ key, target: 'Create', result: 'Equal', value: 0 }],
    success: [putOp(key, encodeRecord(record))],
  });
  if (outcome.succeeded) {
    schedulerMetrics.runsNotStarted.inc({ state: record.state, reason: reasonClass(record.reason) });
  }
  return outcome.succeeded;
}
