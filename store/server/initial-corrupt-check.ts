import type { Logger } from 'pino';
import type { Backend } from '../mvcc/backend.js';
import { hashKeyValues } from '../mvcc/kv-hash.js';
import type { MvccStore } from '../mvcc/kv-store.js';
import type { HashKVResponse, KvHashResult } from '../transport/peer-codec.js';
import { StoreError } from '../mvcc/errors.js';
import type { Maintenance } from './maintenance.js';

/**
 * --experimental-initial-corrupt-check, as etcd 3.4 does it: a member that had data before this
 * start hashes its key-value history at its current revision and asks every peer for its hash at
 * that revision. A peer with another hash at the same compaction point means the two histories
 * differ: the member refuses to start. Every other answer (another compaction point, a peer behind,
 * a peer compacted past the revision, no answer) leaves the question open and is only a warning.
 */

/** The member found a peer with the same compaction point and another hash: it must not serve. */
export class DataInconsistencyError extends Error {
  override readonly name = 'DataInconsistencyError';
  constructor(readonly memberId: bigint, readonly mismatches: number) {
    // etcd's wording; etcd's e2e test waits for it.
    super(`${memberId.toString(16)} found data inconsistency with peers`);
  }
}

export type LocalHash = Extract<KvHashResult, { kind: 'hash' }>;

/**
 * A peer's answer: its HashKV at `revision`, or etcd's HashByRev refusals. Hashed in steps
 * (Maintenance), so a member answering a restarting peer keeps its own heartbeats going.
 */
export async function hashKVAt(kv: MvccStore, maintenance: Maintenance, revision: number): Promise<KvHashResult> {
  if (revision > kv.currentRev) return { kind: 'future-rev', revision: kv.currentRev, compactRevision: kv.compactRev };
  try {
    const { hash, compactRevision } = await maintenance.hashKv(revision);
    return { kind: 'hash', hash, revision: kv.currentRev, compactRevision };
  } catch (err) {
    if (err instanceof StoreError && err.kind === 'compacted') return { kind: 'compacted', revision: kv.currentRev, compactRevision: kv.compactRev };
    throw err;
  }
}

/** This member's HashKV at its current revision. */
export function localHashKV(kv: MvccStore, backend: Backend): LocalHash {
  return hashAt(kv, backend, kv.currentRev);
}

function hashAt(kv: MvccStore, backend: Backend, revision: number): LocalHash {
  // Rows a compaction has yet to remove would count in the rare case no key is kept (as HashKV).
  kv.finishCompaction();
  const hash = hashKeyValues(backend, revision, kv.compactRev);
  return { kind: 'hash', hash, revision: kv.currentRev, compactRevision: kv.compactRev };
}

export interface PeerToCheck {
  readonly id: bigint;
  /** Where the peer is asked (for the log). */
  readonly url: string;
}

export interface InitialCheckInput {
  readonly memberId: bigint;
  /** This member's hash, taken before it applied anything or talked to a peer. */
  readonly local: LocalHash;
  readonly peers: readonly PeerToCheck[];
  ask(peer: bigint, revision: number, timeoutMs: number): Promise<HashKVResponse>;
  /** etcd's request timeout: 5 s plus two election timeouts. */
  readonly timeoutMs: number;
  readonly log: Logger;
}

/** Compares the local hash with every peer's; throws DataInconsistencyError on a mismatch. */
export async function checkInitialHashKV(input: InitialCheckInput): Promise<void> {
  const { memberId, local, log } = input;
  const localId = memberId.toString(16);
  log.info({ localMemberId: localId, timeoutMs: input.timeoutMs }, 'starting initial corruption check');
  const localFields = {
    localMemberId: localId, localMemberRevision: local.revision,
    localMemberCompactRevision: local.compactRevision, localMemberHash: local.hash,
  };
  // All peers at once: the slowest answer (or the timeout) bounds the wait, not their sum.
  const answers = await Promise.all(input.peers.map(async (peer) => {
    try {
      return { peer, answer: await input.ask(peer.id, local.revision, input.timeoutMs) };
    } catch (err) {
      log.warn({ localMemberId: localId, requestedRevision: local.revision, remotePeerEndpoint: peer.url, err: errorText(err) },
        'failed hash kv request');
      return { peer, answer: null };
    }
  }));
  let mismatches = 0;
  for (const { peer, answer } of answers) {
    if (answer === null) continue;
    const remote = { remotePeerId: answer.memberId.toString(16), remotePeerEndpoints: [peer.url] };
    if (answer.kind === 'future-rev') {
      log.warn({ ...localFields, ...remote, remotePeerRevision: answer.revision }, 'cannot fetch hash from slow remote peer');
      continue;
    }
    if (answer.kind === 'compacted') {
      log.warn({ ...localFields, ...remote, remotePeerCompactRevision: answer.compactRevision },
        'cannot fetch hash from remote peer; local member is behind');
      continue;
    }
    if (answer.hash === local.hash) continue;
    const fields = {
      ...localFields, ...remote, remotePeerRevision: answer.revision,
      remotePeerCompactRevision: answer.compactRevision, remotePeerHash: answer.hash,
    };
    if (answer.compactRevision === local.compactRevision) {
      mismatches++;
      log.error(fields, 'found different hash values from remote peer');
    } else {
      log.warn(fields, 'found different compact revision values from remote peer');
    }
  }
  if (mismatches > 0) throw new DataInconsistencyError(memberId, mismatches);
  log.info({ localMemberId: localId }, 'initial corruption checking passed; no corruption');
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
