import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import { loadClientTls, resolveClientTlsFiles, type ClientTlsFiles } from './client-tls.js';
import { resolveCredentials, type EtcdCredentials } from './credentials.js';
import { storeRequestTiming } from './request-metrics.js';
import { requireLeaderOnStreams } from './require-leader.js';

export { resolveCredentials, type EtcdCredentials };

export const DEFAULT_ENDPOINT = '127.0.0.1:2379';
/** A dead endpoint must fail fast rather than hang a CLI command or a worker start. */
export const DIAL_TIMEOUT_MS_DEFAULT = 3_000;

export interface EtcdClientOptions {
  /** Comma-separated host:port list or array; falls back to env ETCRON_ENDPOINTS, then 127.0.0.1:2379. */
  readonly endpoints?: string | readonly string[];
  /** Falls back to env ETCRON_USER (etcdctl's "name[:password]" form too) and ETCRON_PASSWORD. */
  readonly credentials?: EtcdCredentials;
  readonly dialTimeoutMs?: number;
  /** --cacert, --cert, --key; each falls back to env ETCRON_CACERT, ETCRON_CERT, ETCRON_KEY. */
  readonly tls?: ClientTlsFiles;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * A TCP connection of its own, not shared with other clients to the same endpoints (grpc-js
   * shares one per target by default). For a lease's keep-alives: on a shared connection their
   * answers queue behind megabytes of range replies and watch events a busy process has not read yet.
   */
  readonly ownConnection?: boolean;
}

export function resolveEndpoints(options: EtcdClientOptions = {}): string[] {
  const env = options.env ?? process.env;
  const raw = options.endpoints ?? env['ETCRON_ENDPOINTS'] ?? DEFAULT_ENDPOINT;
  const list = (typeof raw === 'string' ? raw.split(',') : [...raw]).map((e) => e.trim()).filter((e) => e.length > 0);
  const endpoints = list.length > 0 ? list : [DEFAULT_ENDPOINT];
  return endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`));
}

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/** clientv3's default MaxCallRecvMsgSize (math.MaxInt32). */
const GRPC_RECEIVE_BYTES_MAX = 2 ** 31 - 1;
const RECONNECT_BACKOFF_MS_MAX = 2_000;
/**
 * Unary calls without a deadline of their own get this one. A store that never answers (a member
 * cut off mid-call, a connection that died without a FIN) must turn into an error the caller
 * retries on another endpoint, not a campaign or a worker loop parked forever.
 */
export const UNARY_DEADLINE_MS_DEFAULT = 15_000;
/**
 * Pings find a dead peer that sent no FIN under a call that waits (a watch, a keep-alive stream,
 * a slow unary call; idle connections are covered by the unary deadline). etcd refuses pings more
 * often than every 5 s (--grpc-keepalive-min-time), and any ping on a connection without a call
 * (its policy does not permit them): it answers those with GOAWAY too_many_pings, which grpc-js
 * logs as an error and answers by halving its ping rate. So: every 10 s, and only under calls.
 */
const KEEPALIVE_TIME_MS = 10_000;
const KEEPALIVE_TIMEOUT_MS = 5_000;

/** Consecutive failures after which a host is skipped, and for how long (several endpoints only). */
const HOST_FAILURES_MAX = 3;
const HOST_SKIP_MS = 1_000;

/**
 * etcd3's default per-host circuit breaker opens after 3 failures and then refuses every call for
 * 5 s, keepalives and finish reports included. With a single endpoint that turns a 1 s network
 * blip into a lost lease and run records stuck in `running`. Instead: one endpoint is always
 * called; with several, a failing host is skipped for 1 s so that calls go to the others.
 */
function hostPolicy(isOnlyHost: boolean): HostPolicy {
  let failures = 0;
  let skipUntilMs = 0;
  const noEvent = (): { dispose(): void } => ({ dispose: () => {} });
  const policy = {
    onSuccess: noEvent,
    onFailure: noEvent,
    async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
      if (!isOnlyHost && Date.now() < skipUntilMs) throw new Error('etcd host skipped after consecutive failures');
      try {
        const value = await fn({ signal: signal ?? new AbortController().signal });
        failures = 0;
        return value;
      } catch (err) {
        if (err instanceof Error && isRecoverableError(err) && ++failures >= HOST_FAILURES_MAX) {
          failures = 0;
          skipUntilMs = Date.now() + HOST_SKIP_MS;
        }
        throw err;
      }
    },
  };
  return policy as unknown as HostPolicy;
}

export function createEtcdClient(options: EtcdClientOptions = {}): Etcd3 {
  const hosts = resolveEndpoints(options);
  // With TLS files every endpoint is dialled over TLS, as etcdctl does with --cacert/--cert/--key.
  const tlsCredentials = loadClientTls(resolveClientTlsFiles(options.tls, options.env ?? process.env));
  const credentials = options.credentials ?? resolveCredentials(undefined, undefined, options.env ?? process.env);
  const config: IOptions = {
    hosts,
    dialTimeout: options.dialTimeoutMs ?? DIAL_TIMEOUT_MS_DEFAULT,
    faultHandling: { host: () => hostPolicy(hosts.length === 1) },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + UNARY_DEADLINE_MS_DEFAULT }),
    // grpc-js refuses answers over 4 MiB by default; etcd's own client (clientv3) takes up to
    // 2 GiB, and a page of run records with output tails can exceed 4 MiB.
    // After an outage grpc-js waits up to 120 s between reconnects by default; a scheduler should
    // be back within seconds of its store.
    // Interceptors: requests timed for etcron_store_request_duration_seconds (/metrics); watches
    // and keep-alives require a leader (shared/etcd/require-leader.ts).
    grpcOptions: {
      interceptors: [storeRequestTiming, requireLeaderOnStreams],
      'grpc.max_receive_message_length': GRPC_RECEIVE_BYTES_MAX,
      'grpc.max_reconnect_backoff_ms': RECONNECT_BACKOFF_MS_MAX,
      'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
      'grpc.keepalive_permit_without_calls': 0,
      ...(options.ownConnection === true ? { 'grpc.use_local_subchannel_pool': 1 } : {}),
    },
    ...(tlsCredentials === undefined ? {} : { credentials: tlsCredentials }),
    ...(credentials === undefined ? {} : { auth: { username: credentials.user, password: credentials.password } }),
  };
  return new Etcd3(config);
}
