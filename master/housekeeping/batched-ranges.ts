import type { Etcd3, IKeyValue, IRequestOp } from 'etcd3';
import { rangeResult, runTxn } from '../../shared/etcd/txn.js';

/**
 * Range reads grouped into read-only txns, one request for many jobs. The missed-slot pass reads
 * each job's recent run keys; with 10,000 jobs that was one request per job per slot, and the
 * housekeeper fell a minute behind on a busy machine (issue 5 bench).
 */
export interface RangeRead {
  readonly key: Buffer;
  readonly rangeEnd: Buffer;
  readonly keysOnly?: boolean;
}

/** Ops per txn: under etcd's default limit of 128 operations per txn. */
export const RANGES_PER_TXN_MAX = 100;

function rangeOp(read: RangeRead): IRequestOp {
  return {
    request_range: {
      key: read.key, range_end: read.rangeEnd,
      ...(read.keysOnly === true ? { keys_only: true } : {}),
    },
  };
}

/** The kvs of each read, in order. Throws if a txn fails; the caller retries on its next pass. */
export async function readRanges(client: Etcd3, reads: readonly RangeRead[]): Promise<IKeyValue[][]> {
  const results: IKeyValue[][] = [];
  for (let from = 0; from < reads.length; from += RANGES_PER_TXN_MAX) {
    const chunk = reads.slice(from, from + RANGES_PER_TXN_MAX);
    const outcome = await runTxn(client, { compare: [], success: chunk.map(rangeOp) });
    for (let index = 0; index < chunk.length; index++) results.push(rangeResult(outcome, index));
  }
  return results;
}
