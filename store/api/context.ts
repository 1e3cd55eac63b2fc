import { status, type sendUnaryData, type ServerUnaryCall, type ServiceError, Metadata } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { resolveCaller, tokenOf } from '../auth/caller.js';
import { AuthError } from '../auth/errors.js';
import { tokenIndex } from '../auth/token-store.js';
import type { RequestAuth } from '../auth/requests.js';
import { StoreError } from '../mvcc/errors.js';
import type { EtcdServer } from '../server/etcd-server.js';
import type { Wire } from './codec.js';
import { STORE_ERROR_WIRE } from './grpc-status.js';
import type { Limits } from './validate.js';
import { LeaderRequiredStreams, noLeaderError, requiresLeader } from './require-leader.js';

/** What every kind of call (unary or streaming) has: metadata, peer, TLS details, deadline. */
export type ServerSurfaceCall = Pick<ServerUnaryCall<unknown, unknown>, 'metadata' | 'getPeer' | 'getAuthContext' | 'getDeadline' | 'getPath'>;

/** What every service handler needs: the member, its limits, and how to fill headers. */
export class ApiContext {
  /**
   * Hook for client-certificate auth (--client-cert-auth): the TLS listener sets it to return the
   * common name of a call's verified client certificate. A call without a token then acts as
   * that user, as in etcd.
   */
  certificateCommonName: ((call: ServerSurfaceCall) => string | undefined) | null = null;

  /** Streams opened with clientv3's WithRequireLeader, ended when this member loses its leader. */
  readonly leaderStreams: LeaderRequiredStreams;
  private ids: IdStrings | null = null;

  constructor(readonly server: EtcdServer, readonly limits: Limits, readonly log: Logger) {
    this.leaderStreams = new LeaderRequiredStreams(server, server.config.electionMs);
  }

  /** Who sent this call, as this member knows now (see resolveCaller); throws AuthError. */
  callerNow(call: ServerSurfaceCall): RequestAuth {
    const commonName = this.certificateCommonName?.(call);
    return resolveCaller(call.metadata, this.server.tokens, this.server.applier.auth, commonName, this.server.jwt);
  }

  /**
   * As callerNow, but a token issued at a log index this member has not applied yet (another
   * member answered the Authenticate) is looked up again after a read barrier, by which this
   * member has applied it, as etcd waits for the token's index.
   */
  async caller(call: ServerSurfaceCall): Promise<RequestAuth> {
    try {
      return this.callerNow(call);
    } catch (err) {
      const token = tokenOf(call.metadata);
      const index = token === undefined ? null : tokenIndex(token);
      const isAhead = index !== null && index > this.server.raftStatus().applied;
      if (!(err instanceof AuthError) || !isAhead) throw err;
      await this.server.readBarrier();
      return this.callerNow(call);
    }
  }

  /** A full response header; `revision` defaults to the current revision. */
  header(revision?: number): Wire {
    const ids = this.idStrings();
    return {
      cluster_id: ids.cluster,
      member_id: ids.member,
      revision: revision ?? this.server.kv.currentRev,
      raft_term: this.server.term,
    };
  }

  /** A header without a revision, as etcd's cluster RPCs answer. */
  headerWithoutRevision(): Wire {
    const ids = this.idStrings();
    return { cluster_id: ids.cluster, member_id: ids.member, raft_term: this.server.term };
  }

  /** The IDs in decimal, made again only when one changes (formatting them is not free). */
  private idStrings(): IdStrings {
    const clusterId = this.server.config.clusterId;
    const memberId = this.server.memberId;
    const last = this.ids;
    if (last !== null && last.clusterId === clusterId && last.memberId === memberId) return last;
    this.ids = { clusterId, memberId, cluster: clusterId.toString(), member: memberId.toString() };
    return this.ids;
  }
}

interface IdStrings {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  readonly cluster: string;
  readonly member: string;
}

export function toServiceError(err: unknown, log: Logger): Partial<ServiceError> {
  if (err instanceof StoreError) {
    const [code, message] = STORE_ERROR_WIRE[err.kind];
    return { code, details: message, metadata: new Metadata() };
  }
  if (err instanceof Error && typeof (err as { code?: unknown }).code === 'number') {
    return { code: (err as unknown as { code: number }).code, details: err.message, metadata: new Metadata() };
  }
  log.error({ err }, 'request failed');
  return { code: status.INTERNAL, details: err instanceof Error ? err.message : String(err), metadata: new Metadata() };
}

/**
 * Ends a server stream with an error status. grpc-js sends a stream's status from its 'error'
 * event; destroy(err) would close it without one and leave the client waiting for ever.
 */
export function failStream(stream: NodeJS.EventEmitter, err: Partial<ServiceError>): void {
  stream.emit('error', err);
}

/** Marks a request the decoder refused; the handler answers with the failure instead. */
export const DECODE_FAILURE = '__etcronDecodeFailure';

export interface DecodeFailure {
  readonly code: number;
  readonly message: string;
}

export function decodeFailure(code: number, message: string): Wire {
  return { [DECODE_FAILURE]: { code, message } satisfies DecodeFailure };
}

/** The refusal carried by a request object, if the decoder refused it. */
export function refusedRequest(request: unknown): Partial<ServiceError> | null {
  if (typeof request !== 'object' || request === null || !(DECODE_FAILURE in request)) return null;
  const failure = (request as Record<string, DecodeFailure>)[DECODE_FAILURE] as DecodeFailure;
  return { code: failure.code, details: failure.message, metadata: new Metadata() };
}

/** Wraps an async handler: its result or its StoreError becomes the gRPC answer. */
export function unary(
  ctx: ApiContext,
  handler: (request: Wire, call: ServerUnaryCall<Wire, Wire>) => Promise<Wire> | Wire,
): (call: ServerUnaryCall<Wire, Wire>, callback: sendUnaryData<Wire>) => void {
  return (call, callback) => {
    const refused = refusedRequest(call.request);
    if (refused !== null) {
      callback(refused, null);
      return;
    }
    if (requiresLeader(call.metadata) && ctx.server.raftStatus().leader === 0n) {
      callback(noLeaderError(), null);
      return;
    }
    let result: Promise<Wire> | Wire;
    try {
      result = handler(call.request, call);
    } catch (err) {
      callback(toServiceError(err, ctx.log), null);
      return;
    }
    if (result instanceof Promise) {
      result.then((value) => callback(null, value), (err: unknown) => callback(toServiceError(err, ctx.log), null));
    } else {
      callback(null, result);
    }
  };
}
