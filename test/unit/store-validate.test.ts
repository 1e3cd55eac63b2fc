import { describe, expect, it } from 'vitest';
import { StoreError } from '../../store/mvcc/errors.js';
import type { RequestOp, TxnRequest } from '../../store/mvcc/types.js';
import { checkPut, checkTxn } from '../../store/api/validate.js';

const limits = { maxTxnOps: 128, maxRequestBytes: 1_572_864 };
const b = (s: string): Buffer => Buffer.from(s);
const put = (key: string): RequestOp => ({ type: 'put', request: { key: b(key), value: b('v'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } });
const del = (key: string, end = ''): RequestOp => ({ type: 'delete-range', request: { key: b(key), rangeEnd: b(end), prevKv: false } });
const nested = (success: RequestOp[], failure: RequestOp[] = []): RequestOp => ({ type: 'txn', request: { compare: [], success, failure } });
const txn = (success: RequestOp[], failure: RequestOp[] = []): TxnRequest => ({ compare: [], success, failure });

function kindOf(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof StoreError) return err.kind;
    throw err;
  }
}

describe('txn syntax checks (etcd 3.4 behaviour)', () => {
  it('refuses two puts of one key in a branch, also through nested txns', () => {
    expect(kindOf(() => checkTxn(txn([put('a'), put('a')]), limits))).toBe('duplicate-key');
    expect(kindOf(() => checkTxn(txn([put('a'), nested([put('a')])]), limits))).toBe('duplicate-key');
  });

  it('refuses a put and a delete covering the same key, in either order', () => {
    expect(kindOf(() => checkTxn(txn([put('b'), del('a', 'c')]), limits))).toBe('duplicate-key');
    expect(kindOf(() => checkTxn(txn([del('a', 'c'), put('b')]), limits))).toBe('duplicate-key');
    expect(kindOf(() => checkTxn(txn([del('b'), nested([put('b')])]), limits))).toBe('duplicate-key');
  });

  it('allows overlapping deletes, a key in both branches, and the same put in both branches of a nested txn', () => {
    expect(kindOf(() => checkTxn(txn([del('a', 'z'), del('b')]), limits))).toBeUndefined();
    expect(kindOf(() => checkTxn(txn([put('a')], [put('a')]), limits))).toBeUndefined();
    expect(kindOf(() => checkTxn(txn([nested([put('a')], [put('a')])]), limits))).toBeUndefined();
  });

  it('limits ops per level to 128 and gives a nested txn what the level left', () => {
    const many = (n: number): RequestOp[] => Array.from({ length: n }, (_, i) => put(`k${i}`));
    expect(kindOf(() => checkTxn(txn(many(128), many(128)), limits))).toBeUndefined();
    expect(kindOf(() => checkTxn(txn(many(129)), limits))).toBe('too-many-ops');
    const inner = (n: number): RequestOp => nested(Array.from({ length: n }, (_, i) => put(`inner${i}`)));
    expect(kindOf(() => checkTxn(txn([...many(100), inner(27)]), limits))).toBeUndefined();
    expect(kindOf(() => checkTxn(txn([...many(100), inner(28)]), limits))).toBe('too-many-ops');
  });

  it('refuses an empty key in a compare or an op', () => {
    expect(kindOf(() => checkTxn({ compare: [{ key: b(''), rangeEnd: b(''), target: 'version', result: 'equal', operand: 0 }], success: [], failure: [] }, limits))).toBe('key-not-provided');
    expect(kindOf(() => checkTxn(txn([put('')]), limits))).toBe('key-not-provided');
  });
});

describe('put syntax checks', () => {
  const base = { key: b('k'), value: b(''), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false };
  it('rejects ignore_value with a value and ignore_lease with a lease', () => {
    expect(kindOf(() => checkPut({ ...base, ignoreValue: true, value: b('x') }, limits))).toBe('value-provided');
    expect(kindOf(() => checkPut({ ...base, ignoreLease: true, lease: 3n }, limits))).toBe('lease-provided');
  });

  it('rejects a request over --max-request-bytes and accepts one just under it', () => {
    expect(kindOf(() => checkPut({ ...base, value: Buffer.alloc(limits.maxRequestBytes) }, limits))).toBe('request-too-large');
    expect(kindOf(() => checkPut({ ...base, value: Buffer.alloc(limits.maxRequestBytes - 100) }, limits))).toBeUndefined();
  });
});
