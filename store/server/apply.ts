import { unreachable } from '../../shared/assert.js';
import { AuthStore } from '../auth/auth-store.js';
import { AuthError } from '../auth/errors.js';
import * as permissions from '../auth/request-permissions.js';
import type { AuthOpResult } from '../auth/requests.js';
import { SimpleTokenStore } from '../auth/token-store.js';
import type { Lessor } from '../lease/lessor.js';
import type { Backend } from '../mvcc/backend.js';
import { StoreError } from '../mvcc/errors.js';
import type { MvccStore, WriteTxn } from '../mvcc/kv-store.js';
import type {
  Compare, KeyValue, MvccEvent, PutRequest, RequestOp, ResponseOp, TxnRequest, TxnResult,
} from '../mvcc/types.js';
import type { AlarmKind, InternalRequest } from './requests.js';

export type ApplyResult =
  | { readonly type: 'put'; readonly revision: number; readonly prevKv: KeyValue | null }
  | { readonly type: 'delete-range'; readonly revision: number; readonly deleted: number; readonly prevKvs: KeyValue[] }
  | { readonly type: 'txn'; readonly result: TxnResult }
  | { readonly type: 'compact'; readonly revision: number }
  | { readonly type: 'lease-grant'; readonly id: bigint; readonly ttlSeconds: number; readonly revision: number }
  | { readonly type: 'lease-revoke'; readonly revision: number }
  | { readonly type: 'alarm'; readonly alarms: readonly AlarmEntry[] }
  | { readonly type: 'member-attributes' }
  | { readonly type: 'auth'; readonly result: AuthOpResult; readonly revision: number }
  | { readonly type: 'noop' };

export interface AlarmEntry {
  readonly memberId: bigint;
  readonly alarm: AlarmKind;
}

export type ApplyOutcome =
  | { readonly ok: true; readonly value: ApplyResult }
  | { readonly ok: false; readonly error: StoreError | AuthError };

const ALARM_CODES: Record<AlarmKind, number> = { none: 0, nospace: 1, corrupt: 2 };
const ALARM_KINDS: readonly AlarmKind[] = ['none', 'nospace', 'corrupt'];

/**
 * Applies committed requests to the MVCC store and the lessor. Deterministic: no clock, no
 * randomness, no I/O but the backend writes of the surrounding transaction. A refused request
 * changes nothing and its error is the same on every member.
 */
export class Applier {
  /** Watch events of the entries applied since the last take(), in revision order. */
  private pending: MvccEvent[][] = [];
  /** Active alarms, mirrored from the backend so the write path does not query SQLite. */
  private activeAlarms: AlarmEntry[];
  /** Users, roles and permissions; lives as long as this applier (a snapshot brings new ones). */
  readonly auth: AuthStore;
  private readonly leaseKeys: permissions.LeaseKeys;

  constructor(
    private readonly kv: MvccStore,
    private readonly lessor: Lessor,
    private readonly backend: Backend,
    tokens: SimpleTokenStore = new SimpleTokenStore(),
  ) {
    this.auth = new AuthStore(backend, tokens);
    this.leaseKeys = (id) => this.lessor.lookup(id)?.keys;
    this.activeAlarms = this.backend.alarms().map((a) => ({ memberId: BigInt(a.member), alarm: ALARM_KINDS[a.alarm] ?? 'none' }));
  }

  takeEvents(): MvccEvent[][] {
    const out = this.pending;
    this.pending = [];
    return out;
  }

  alarms(): AlarmEntry[] {
    return [...this.activeAlarms];
  }

  hasAlarm(alarm: AlarmKind): boolean {
    return this.activeAlarms.length > 0 && this.activeAlarms.some((a) => a.alarm === alarm);
  }

  /** `index` is the entry's log index; only Authenticate uses it (simple tokens end with it). */
  apply(request: InternalRequest, index = 0): ApplyOutcome {
    try {
      return { ok: true, value: this.applyOrThrow(request, index) };
    } catch (err) {
      if (err instanceof StoreError || err instanceof AuthError) return { ok: false, error: err };
      throw err;
    }
  }

  /** Permission checks come first, as etcd's auth applier wraps all others. */
  private checkPermissions(request: InternalRequest): void {
    const who = request.auth;
    // Disabled auth allows everything; the checks below would each find that out again.
    if (who === undefined || !this.auth.enabled) return;
    switch (request.type) {
      case 'put': permissions.checkPut(this.auth, who, request.request, this.leaseKeys); break;
      case 'delete-range': permissions.checkDeleteRange(this.auth, who, request.request); break;
      case 'txn': permissions.checkTxn(this.auth, who, request.request); break;
      case 'lease-revoke': permissions.checkLeaseKeys(this.auth, who, request.id, this.leaseKeys); break;
      default: break;
    }
  }

  private applyOrThrow(request: InternalRequest, index: number): ApplyResult {
    this.checkPermissions(request);
    switch (request.type) {
      case 'auth': {
        const result = this.auth.apply(request.op, request.auth, index);
        return { type: 'auth', result, revision: this.kv.currentRev };
      }
      case 'put': {
        if (this.hasAlarm('nospace')) throw new StoreError('no-space');
        // A plain put checks its lease before the previous key; a txn's put the other way round.
        if (request.request.lease !== 0n && !this.lessor.has(request.request.lease)) throw new StoreError('lease-not-found');
        this.checkPut(request.request);
        const txn = this.kv.beginWrite();
        const result = txn.put(request.request);
        this.finish(txn);
        return { type: 'put', revision: result.revision, prevKv: result.prevKv };
      }
      case 'delete-range': {
        const txn = this.kv.beginWrite();
        const result = txn.deleteRange(request.request);
        this.finish(txn);
        return { type: 'delete-range', revision: result.revision, deleted: result.deleted, prevKvs: result.prevKvs };
      }
      case 'txn':
        return { type: 'txn', result: this.applyTxn(request.request) };
      case 'compact': {
        if (request.revision <= this.kv.compactRev) throw new StoreError('compacted');
        if (request.revision > this.kv.currentRev) throw new StoreError('future-rev');
        this.kv.compact(request.revision);
        return { type: 'compact', revision: this.kv.currentRev };
      }
      case 'lease-grant': {
        if (this.hasAlarm('nospace')) throw new StoreError('no-space');
        const lease = this.lessor.grant(request.id, request.ttlSeconds);
        return { type: 'lease-grant', id: lease.id, ttlSeconds: lease.ttlSeconds, revision: this.kv.currentRev };
      }
      case 'lease-revoke': {
        const keys = this.lessor.revoke(request.id);
        const txn = this.kv.beginWrite();
        for (const key of keys) txn.deleteRange({ key: Buffer.from(key, 'latin1'), rangeEnd: Buffer.alloc(0), prevKv: false });
        this.finish(txn);
        return { type: 'lease-revoke', revision: this.kv.currentRev };
      }
      case 'alarm': {
        const code = ALARM_CODES[request.alarm];
        const member = request.memberId.toString();
        const existed = this.activeAlarms.some((a) => a.memberId === request.memberId && a.alarm === request.alarm);
        if (request.alarm === 'none' || request.memberId === 0n) return { type: 'alarm', alarms: [] };
        this.backend.setAlarm(member, code, request.activate);
        this.activeAlarms = this.activeAlarms.filter((a) => !(a.memberId === request.memberId && a.alarm === request.alarm));
        if (request.activate) this.activeAlarms.push({ memberId: request.memberId, alarm: request.alarm });
        const changed = request.activate ? !existed : existed;
        return { type: 'alarm', alarms: changed || request.activate ? [{ memberId: request.memberId, alarm: request.alarm }] : [] };
      }
      case 'member-attributes':
        // Members publish their name and client URLs through the log, so every member lists them.
        this.backend.setMemberAttributes(request.id, request.name, request.clientUrls);
        return { type: 'member-attributes' };
      case 'noop':
        return { type: 'noop' };
      default:
        return unreachable(request, 'request type');
    }
  }

  private finish(txn: WriteTxn): void {
    const events = txn.end();
    if (events.length > 0) this.pending.push(events);
  }

  /** etcd's order inside a txn: the previous key for ignore_value/ignore_lease, then the lease. */
  private checkPut(request: PutRequest): void {
    if ((request.ignoreValue || request.ignoreLease) && this.kv.get(request.key) === null) {
      throw new StoreError('key-not-found');
    }
    if (request.lease !== 0n && !this.lessor.has(request.lease)) throw new StoreError('lease-not-found');
  }

  private applyTxn(request: TxnRequest): TxnResult {
    // Every compare, nested ones included, sees the state before the txn: decide the path first.
    const path = this.choosePath(request);
    const ops = this.checkPath(request, path);
    if (this.hasAlarm('nospace') && ops.some((op) => op.type === 'put')) throw new StoreError('no-space');
    const txn = this.kv.beginWrite();
    const result = this.executePath(txn, request, path, { next: 0 });
    this.finish(txn);
    return { ...result, revision: txn.hasWrites ? txn.rev : this.kv.currentRev };
  }

  /** The branch taken at every txn level, in depth-first order. */
  private choosePath(request: TxnRequest, path: boolean[] = []): boolean[] {
    const succeeded = request.compare.every((c) => this.compare(c));
    path.push(succeeded);
    for (const op of succeeded ? request.success : request.failure) {
      if (op.type === 'txn') this.choosePath(op.request, path);
    }
    return path;
  }

  /**
   * State checks of the ops on the taken path, as etcd orders them: every put first (lease
   * exists; key exists for ignore_value/ignore_lease), then every range (revision neither future
   * nor below the compaction point, negative revisions included). The first failure refuses the txn.
   */
  private checkPath(request: TxnRequest, path: readonly boolean[]): RequestOp[] {
    const ops: RequestOp[] = [];
    collectPath(request, path, { next: 0 }, ops);
    for (const op of ops) if (op.type === 'put') this.checkPut(op.request);
    for (const op of ops) {
      if (op.type !== 'range' || op.request.revision === 0) continue;
      if (op.request.revision > this.kv.currentRev) throw new StoreError('future-rev');
      if (op.request.revision < this.kv.compactRev) throw new StoreError('compacted');
    }
    return ops;
  }

  private executePath(txn: WriteTxn, request: TxnRequest, path: readonly boolean[], cursor: { next: number }): TxnResult {
    const succeeded = path[cursor.next++] === true;
    const responses: ResponseOp[] = [];
    for (const op of succeeded ? request.success : request.failure) responses.push(this.executeOp(txn, op, path, cursor));
    return { revision: 0, succeeded, responses };
  }

  private executeOp(txn: WriteTxn, op: RequestOp, path: readonly boolean[], cursor: { next: number }): ResponseOp {
    switch (op.type) {
      case 'range':
        return { type: 'range', revision: txn.readRev, result: txn.range(op.request) };
      case 'put': {
        const result = txn.put(op.request);
        return { type: 'put', revision: result.revision, result };
      }
      case 'delete-range': {
        const result = txn.deleteRange(op.request);
        return { type: 'delete-range', revision: result.revision, result };
      }
      case 'txn':
        return { type: 'txn', result: this.executePath(txn, op.request, path, cursor) };
      default:
        return unreachable(op, 'op');
    }
  }

  private compare(c: Compare): boolean {
    const kvs: KeyValue[] = [];
    this.kv.visitLive(c.key, c.rangeEnd, this.kv.currentRev, (kv) => {
      kvs.push(kv);
      return true;
    });
    if (kvs.length === 0) {
      if (c.target === 'value') return false;
      return compareOne(c, null);
    }
    return kvs.every((kv) => compareOne(c, kv));
  }
}

function compareOne(c: Compare, kv: KeyValue | null): boolean {
  let order: number;
  switch (c.target) {
    case 'value': {
      const operand = Buffer.isBuffer(c.operand) ? c.operand : Buffer.alloc(0);
      order = Buffer.compare(kv?.value ?? Buffer.alloc(0), operand);
      break;
    }
    case 'lease':
      order = compareBig(kv?.lease ?? 0n, typeof c.operand === 'bigint' ? c.operand : 0n);
      break;
    case 'version':
      order = compareNum(kv?.version ?? 0, c.operand);
      break;
    case 'create':
      order = compareNum(kv?.createRevision ?? 0, c.operand);
      break;
    case 'mod':
      order = compareNum(kv?.modRevision ?? 0, c.operand);
      break;
  }
  switch (c.result) {
    case 'equal': return order === 0;
    case 'not-equal': return order !== 0;
    case 'greater': return order > 0;
    case 'less': return order < 0;
    case 'always': return true;
  }
}

function compareNum(a: number, operand: number | bigint | Buffer): number {
  const b = typeof operand === 'number' ? operand : typeof operand === 'bigint' ? Number(operand) : 0;
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The ops of the branches taken, depth first, in the order etcd visits them. */
function collectPath(request: TxnRequest, path: readonly boolean[], cursor: { next: number }, out: RequestOp[]): void {
  const ops = path[cursor.next++] === true ? request.success : request.failure;
  for (const op of ops) {
    if (op.type === 'txn') collectPath(op.request, path, cursor, out);
    else out.push(op);
  }
}


