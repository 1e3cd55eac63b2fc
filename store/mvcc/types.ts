/** The MVCC data model, in etcd's words. Keys and values are raw bytes (never JS strings). */
export interface KeyValue {
  readonly key: Buffer;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly value: Buffer;
  readonly lease: bigint;
}

export type EventType = 'put' | 'delete';

export interface MvccEvent {
  readonly type: EventType;
  /** For a delete: only key and modRevision (the deletion's revision) are meaningful. */
  readonly kv: KeyValue;
  /** The key's previous live state, when there was one (filled for watchers that ask). */
  readonly prevKv: KeyValue | null;
}

export type SortOrder = 'none' | 'ascend' | 'descend';
export type SortTarget = 'key' | 'version' | 'create' | 'mod' | 'value';

export interface RangeRequest {
  readonly key: Buffer;
  readonly rangeEnd: Buffer;
  readonly limit: number;
  readonly revision: number;
  readonly sortOrder: SortOrder;
  readonly sortTarget: SortTarget;
  readonly serializable: boolean;
  readonly keysOnly: boolean;
  readonly countOnly: boolean;
  readonly minModRevision: number;
  readonly maxModRevision: number;
  readonly minCreateRevision: number;
  readonly maxCreateRevision: number;
}

export interface RangeResult {
  readonly kvs: KeyValue[];
  readonly more: boolean;
  readonly count: number;
}

export interface PutRequest {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly lease: bigint;
  readonly prevKv: boolean;
  readonly ignoreValue: boolean;
  readonly ignoreLease: boolean;
}

export interface DeleteRangeRequest {
  readonly key: Buffer;
  readonly rangeEnd: Buffer;
  readonly prevKv: boolean;
}

/** 'always' stands for a result enum etcd does not know: such a compare holds. */
export type CompareResult = 'equal' | 'greater' | 'less' | 'not-equal' | 'always';
export type CompareTarget = 'version' | 'create' | 'mod' | 'value' | 'lease';

export interface Compare {
  readonly result: CompareResult;
  readonly target: CompareTarget;
  readonly key: Buffer;
  readonly rangeEnd: Buffer;
  /** The operand; a number for revision/version targets, bytes for value, bigint for lease. */
  readonly operand: number | bigint | Buffer;
}

export type RequestOp =
  | { readonly type: 'range'; readonly request: RangeRequest }
  | { readonly type: 'put'; readonly request: PutRequest }
  | { readonly type: 'delete-range'; readonly request: DeleteRangeRequest }
  | { readonly type: 'txn'; readonly request: TxnRequest };

export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly RequestOp[];
  readonly failure: readonly RequestOp[];
}

export interface PutResult {
  readonly revision: number;
  readonly prevKv: KeyValue | null;
}

export interface DeleteRangeResult {
  readonly revision: number;
  readonly deleted: number;
  readonly prevKvs: KeyValue[];
}

export type ResponseOp =
  | { readonly type: 'range'; readonly revision: number; readonly result: RangeResult }
  | { readonly type: 'put'; readonly revision: number; readonly result: PutResult }
  | { readonly type: 'delete-range'; readonly revision: number; readonly result: DeleteRangeResult }
  | { readonly type: 'txn'; readonly result: TxnResult };

export interface TxnResult {
  readonly revision: number;
  readonly succeeded: boolean;
  readonly responses: ResponseOp[];
}
