import type { Etcd3, ICompare, IKeyValue, IRequestOp, ITxnResponse, IRangeResponse } from 'etcd3';
import { assertSafeInteger } from '../assert.js';

/**
 * Thin helpers over the raw KV txn RPC. The etcd3 builders cannot express a compare over a key
 * range (Compare.range_end, etcd >= 3.3), which the Forbid claim needs, so we build requests here.
 */
export type CompareTarget = 'Version' | 'Create' | 'Mod' | 'Lease';
export type CompareResult = 'Equal' | 'NotEqual' | 'Greater' | 'Less';

export interface CompareSpec {
  readonly key: string;
  /** Compare every key in [key, rangeEnd); an empty range compares as a missing key (all zero). */
  readonly rangeEnd?: Buffer;
  readonly target: CompareTarget;
  readonly result: CompareResult;
  readonly value: number | string;
}

type RangeCompare = ICompare & { range_end?: Buffer };

function toCompare(spec: CompareSpec): RangeCompare {
  const compare: RangeCompare = { key: Buffer.from(spec.key), target: spec.target, result: spec.result };
  if (spec.rangeEnd !== undefined) compare.range_end = spec.rangeEnd;
  switch (spec.target) {
    case 'Version': compare.version = spec.value; break;
    case 'Create': compare.create_revision = spec.value; break;
    case 'Mod': compare.mod_revision = spec.value; break;
    case 'Lease': compare.lease = spec.value; break;
  }
  return compare;
}

export function putOp(key: string, value: string, leaseId?: string): IRequestOp {
  return { request_put: { key: Buffer.from(key), value: Buffer.from(value), ...(leaseId === undefined ? {} : { lease: leaseId }) } };
}

export function getOp(key: string, rangeEnd?: Buffer): IRequestOp {
  return { request_range: { key: Buffer.from(key), ...(rangeEnd === undefined ? {} : { range_end: rangeEnd }) } };
}

export function deleteOp(key: string, rangeEnd?: Buffer): IRequestOp {
  return { request_delete_range: { key: Buffer.from(key), prev_kv: true, ...(rangeEnd === undefined ? {} : { range_end: rangeEnd }) } };
}

export interface TxnSpec {
  readonly compare: readonly CompareSpec[];
  readonly success: readonly IRequestOp[];
  readonly failure?: readonly IRequestOp[];
}

export interface TxnOutcome {
  readonly succeeded: boolean;
  /** Header revision: for a successful txn that wrote, the revision of all its writes. */
  readonly revision: number;
  readonly response: ITxnResponse;
}

export async function runTxn(client: Etcd3, spec: TxnSpec): Promise<TxnOutcome> {
  const response = await client.kv.txn({
    compare: spec.compare.map(toCompare),
    success: [...spec.success],
    failure: [...(spec.failure ?? [])],
  });
  return { succeeded: response.succeeded, revision: revisionOf(response.header.revision), response };
}

export function revisionOf(text: string | number): number {
  const value = Number(text);
  assertSafeInteger(value, 'revision');
  return value;
}

/** The kvs of the n-th response op when it was a range. */
export function rangeResult(outcome: TxnOutcome, index: number): IKeyValue[] {
  const op = outcome.response.responses[index];
  const range: IRangeResponse | undefined = op?.response_range;
  return range?.kvs ?? [];
}
