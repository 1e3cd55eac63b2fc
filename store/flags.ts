import { openSslCipherList } from './tls/cipher-suites.js';
import { parseJwtOptions, type JwtOptions } from './auth/jwt-tokens.js';

/**
 * etcd's command-line flags for `etcron store`, with etcd's names, meanings and defaults, in Go's
 * flag syntax (`-f v`, `--f v`, `-f=v`, `--f=v`) and as ETCD_* environment variables.
 */
export interface StoreFlags {
  readonly name: string;
  readonly dataDir: string;
  readonly listenClientUrls: readonly string[];
  readonly advertiseClientUrls: readonly string[];
  readonly listenPeerUrls: readonly string[];
  readonly initialAdvertisePeerUrls: readonly string[];
  readonly initialCluster: string;
  readonly initialClusterState: 'new' | 'existing';
  readonly initialClusterToken: string;
  /** Refuse membership changes that would leave too few started members for a quorum. */
  readonly strictReconfigCheck: boolean;
  /** Applied entries between two trims of the Raft log; 0 for etcron's default. */
  readonly snapshotCount: number;
  readonly preVote: boolean;
  /** gRPC streams one client connection may hold open at once (0: unlimited). */
  readonly maxConcurrentStreams: number;
  /** --cipher-suites as an OpenSSL cipher list (TLS 1.3 suites kept); undefined keeps the defaults. */
  readonly cipherList: string | undefined;
  /** Extra URLs that serve /metrics and /health over plain HTTP (--listen-metrics-urls). */
  readonly listenMetricsUrls: readonly string[];
  readonly initialCorruptCheck: boolean;
  /** --wal-dir: etcd's separate log directory ('' = none). */
  readonly walDir: string;
  readonly autoCompactionMode: 'periodic' | 'revision';
  readonly autoCompactionRetention: string;
  readonly quotaBackendBytes: number;
  readonly maxRequestBytes: number;
  readonly maxTxnOps: number;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal';
  /** --auth-token: etcd's "simple" (default) or "jwt,sign-method=…,priv-key=…,pub-key=…,ttl=…". */
  readonly authToken: { readonly kind: 'simple' } | { readonly kind: 'jwt'; readonly options: JwtOptions };
  /** --auth-token-ttl: a simple token expires after this long unused. */
  readonly authTokenTtlSeconds: number;
  /** --cert-file, --key-file, --trusted-ca-file, --client-cert-auth, --auto-tls. */
  readonly clientTls: TlsFlags;
  /** The --peer-* forms of the same flags. */
  readonly peerTls: TlsFlags;
}

/** One side's TLS flags, as given; store/tls/ checks and loads them when the member starts. */
export interface TlsFlags {
  readonly certFile: string;
  readonly keyFile: string;
  readonly trustedCaFile: string;
  readonly isClientCertAuth: boolean;
  readonly isAutoTls: boolean;
  /** --client-crl-file (client side only): certificates it revokes fail the handshake. */
  readonly crlFile: string;
  /** --peer-cert-allowed-cn / --peer-cert-allowed-hostname (peer side only; '' = any). */
  readonly allowedCn?: string;
  readonly allowedHostname?: string;
}

export class FlagError extends Error {
  override readonly name = 'FlagError';
}

type Kind = 'string' | 'urls' | 'int' | 'bool';

interface FlagSpec {
  readonly kind: Kind;
  readonly defaultValue: string;
  readonly help: string;
}

/** etcd's default backend quota when --quota-backend-bytes is 0. */
export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;

export const FLAG_SPECS: Readonly<Record<string, FlagSpec>> = {
  'name': { kind: 'string', defaultValue: 'default', help: 'human-readable name for this member' },
  'data-dir': { kind: 'string', defaultValue: '', help: 'path to the data directory (default "<name>.etcd")' },
  'listen-client-urls': { kind: 'urls', defaultValue: 'http://localhost:2379', help: 'URLs to listen on for client traffic' },
  'advertise-client-urls': { kind: 'urls', defaultValue: 'http://localhost:2379', help: 'client URLs advertised to the cluster' },
  'listen-peer-urls': { kind: 'urls', defaultValue: 'http://localhost:2380', help: 'URLs to listen on for peer traffic' },
  'initial-advertise-peer-urls': { kind: 'urls', defaultValue: 'http://localhost:2380', help: 'peer URLs advertised to the cluster' },
  'initial-cluster': { kind: 'string', defaultValue: '', help: 'initial cluster configuration, name=url,... (default "<name>=<initial-advertise-peer-urls>")' },
  'initial-cluster-state': { kind: 'string', defaultValue: 'new', help: 'initial cluster state ("new" or "existing")' },
  'initial-cluster-token': { kind: 'string', defaultValue: 'etcd-cluster', help: 'initial cluster token' },
  'strict-reconfig-check': { kind: 'bool', defaultValue: 'true', help: 'reject reconfiguration requests that would cause quorum loss' },
  'snapshot-count': { kind: 'int', defaultValue: '0', help: 'committed entries between two trims of the Raft log (0: every 1,000, keeping 5,000 for slow followers)' },
  'pre-vote': { kind: 'bool', defaultValue: 'true', help: 'run a pre-vote before an election (etcd 3.4 defaults to false; etcron to true)' },
  'max-concurrent-streams': { kind: 'int', defaultValue: '4294967295', help: 'maximum concurrent streams that each client connection can have open' },
  'listen-metrics-urls': { kind: 'string', defaultValue: '', help: 'more URLs serving /metrics and /health (plain HTTP)' },
  'enable-v2': { kind: 'bool', defaultValue: 'false', help: 'the v2 API: etcron serves v3 only, so only false is accepted' },
  'wal-dir': { kind: 'string', defaultValue: '', help: 'path to the dedicated wal directory (etcron keeps its Raft log in the member database; see README)' },
  'experimental-initial-corrupt-check': { kind: 'bool', defaultValue: 'false', help: 'compare the key-value hash with the peers before serving' },
  'auto-compaction-mode': { kind: 'string', defaultValue: 'periodic', help: '"periodic" or "revision"' },
  'auto-compaction-retention': { kind: 'string', defaultValue: '0', help: 'history to keep: hours or a duration (periodic), revisions (revision); 0 disables' },
  'quota-backend-bytes': { kind: 'int', defaultValue: '0', help: 'raise an alarm when the backend exceeds this size (0 = 2 GiB)' },
  'max-request-bytes': { kind: 'int', defaultValue: '1572864', help: 'maximum client request size in bytes' },
  'max-txn-ops': { kind: 'int', defaultValue: '128', help: 'maximum number of operations in a txn' },
  'heartbeat-interval': { kind: 'int', defaultValue: '100', help: 'time (ms) of a heartbeat interval' },
  'election-timeout': { kind: 'int', defaultValue: '1000', help: 'time (ms) of an election timeout' },
  'log-level': { kind: 'string', defaultValue: 'info', help: 'debug, info, warn, error, panic or fatal' },
  'auth-token': { kind: 'string', defaultValue: 'simple', help: 'auth token type: "simple" or "jwt,sign-method=RS256,priv-key=FILE,pub-key=FILE,ttl=5m"' },
  'auth-token-ttl': { kind: 'int', defaultValue: '300', help: 'time (in seconds) a simple auth token lives unused' },
  'cert-file': { kind: 'string', defaultValue: '', help: 'path to the client server TLS cert file' },
  'key-file': { kind: 'string', defaultValue: '', help: 'path to the client server TLS key file' },
  'trusted-ca-file': { kind: 'string', defaultValue: '', help: 'path to the client server TLS trusted CA cert file' },
  'client-cert-auth': { kind: 'bool', defaultValue: 'false', help: 'enable client cert authentication' },
  'auto-tls': { kind: 'bool', defaultValue: 'false', help: 'client TLS using generated certificates' },
  'peer-cert-allowed-cn': { kind: 'string', defaultValue: '', help: 'allowed CN for inter peer authentication' },
  'peer-cert-allowed-hostname': { kind: 'string', defaultValue: '', help: 'allowed TLS hostname for inter peer authentication' },
  'cipher-suites': { kind: 'string', defaultValue: '', help: 'comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go)' },
  'client-crl-file': { kind: 'string', defaultValue: '', help: 'path to the client certificate revocation list file (DER or PEM)' },
  'peer-cert-file': { kind: 'string', defaultValue: '', help: 'path to the peer server TLS cert file' },
  'peer-key-file': { kind: 'string', defaultValue: '', help: 'path to the peer server TLS key file' },
  'peer-trusted-ca-file': { kind: 'string', defaultValue: '', help: 'path to the peer server TLS trusted CA file' },
  'peer-client-cert-auth': { kind: 'bool', defaultValue: 'false', help: 'enable peer client cert authentication' },
  'peer-auto-tls': { kind: 'bool', defaultValue: 'false', help: 'peer TLS using generated certificates' },
  // Accepted for command-line compatibility with etcd 3.4; etcron always logs structured JSON.
  'logger': { kind: 'string', defaultValue: 'zap', help: 'accepted for compatibility ("zap")' },
  'log-outputs': { kind: 'string', defaultValue: 'stderr', help: 'accepted for compatibility ("stderr")' },
};

/** The spellings Go's strconv.ParseBool accepts. */
const GO_TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True'];
const GO_FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False'];

function envName(flag: string): string {
  return `ETCD_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** Parses etcd-style arguments and environment; throws FlagError with a clear message. */
export function parseStoreFlags(argv: readonly string[], env: NodeJS.ProcessEnv): StoreFlags {
  const given = new Map<string, string>();
  for (const [flag] of Object.entries(FLAG_SPECS)) {
    const fromEnv = env[envName(flag)];
    if (fromEnv !== undefined) given.set(flag, fromEnv);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const match = /^--?([a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    if (match === null) throw new FlagError(`unexpected argument "${arg}"; etcron store takes only flags (see --help)`);
    const flag = match[1] as string;
    if (!(flag in FLAG_SPECS)) throw new FlagError(`flag provided but not defined: -${flag}`);
    // As Go's flag package (and so etcd): a flag given again overrides the earlier value.
    let value = match[2];
    // As Go's flag package: a boolean flag alone means true and never takes the next argument.
    if (value === undefined && (FLAG_SPECS[flag] as FlagSpec).kind === 'bool') value = 'true';
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new FlagError(`flag needs an argument: -${flag}`);
    }
    given.set(flag, value);
  }
  const get = (flag: string): string => given.get(flag) ?? (FLAG_SPECS[flag] as FlagSpec).defaultValue;
  const int = (flag: string): number => {
    const raw = get(flag).trim();
    if (!/^-?\d+$/.test(raw)) throw new FlagError(`invalid value "${raw}" for flag -${flag}: parse error`);
    return Number(raw);
  };
  const bool = (flag: string): boolean => {
    const raw = get(flag);
    if (GO_TRUE.includes(raw)) return true;
    if (GO_FALSE.includes(raw)) return false;
    throw new FlagError(`invalid boolean value "${raw}" for -${flag}: parse error`);
  };
  const tls = (prefix: '' | 'peer-'): TlsFlags => ({
    certFile: get(`${prefix}cert-file`),
    keyFile: get(`${prefix}key-file`),
    trustedCaFile: get(`${prefix}trusted-ca-file`),
    isClientCertAuth: bool(`${prefix}client-cert-auth`),
    isAutoTls: bool(`${prefix}auto-tls`),
    crlFile: prefix === '' ? get('client-crl-file') : '',
    allowedCn: prefix === 'peer-' ? get('peer-cert-allowed-cn') : '',
    allowedHostname: prefix === 'peer-' ? get('peer-cert-allowed-hostname') : '',
  });
  const urls = (flag: string): string[] => {
    const list = get(flag).split(',').map((u) => u.trim()).filter((u) => u !== '');
    for (const u of list) checkUrl(flag, u);
    return list;
  };
  const name = get('name');
  const initialAdvertisePeerUrls = urls('initial-advertise-peer-urls');
  const state = get('initial-cluster-state');
  if (state !== 'new' && state !== 'existing') throw new FlagError(`invalid value "${state}" for flag -initial-cluster-state: valid values are "new", "existing"`);
  const mode = get('auto-compaction-mode');
  if (mode !== 'periodic' && mode !== 'revision') throw new FlagError(`unknown auto-compaction-mode "${mode}" (periodic or revision)`);
  const level = get('log-level');
  if (!['debug', 'info', 'warn', 'error', 'panic', 'fatal'].includes(level)) throw new FlagError(`invalid log level "${level}"`);
  const flags: StoreFlags = {
    name,
    dataDir: get('data-dir') === '' ? `${name}.etcd` : get('data-dir'),
    listenClientUrls: urls('listen-client-urls'),
    advertiseClientUrls: urls('advertise-client-urls'),
    listenPeerUrls: urls('listen-peer-urls'),
    initialAdvertisePeerUrls,
    initialCluster: get('initial-cluster') === '' ? initialAdvertisePeerUrls.map((u) => `${name}=${u}`).join(',') : get('initial-cluster'),
    initialClusterState: state,
    initialClusterToken: get('initial-cluster-token'),
    strictReconfigCheck: bool('strict-reconfig-check'),
    snapshotCount: int('snapshot-count'),
    preVote: bool('pre-vote'),
    maxConcurrentStreams: int('max-concurrent-streams'),
    cipherList: cipherListOf(get('cipher-suites')),
    listenMetricsUrls: get('listen-metrics-urls').split(',').map((u) => u.trim()).filter((u) => u !== ''),
    initialCorruptCheck: bool('experimental-initial-corrupt-check'),
    walDir: get('wal-dir'),
    autoCompactionMode: mode,
    autoCompactionRetention: get('auto-compaction-retention'),
    quotaBackendBytes: int('quota-backend-bytes'),
    maxRequestBytes: int('max-request-bytes'),
    maxTxnOps: int('max-txn-ops'),
    heartbeatIntervalMs: int('heartbeat-interval'),
    electionTimeoutMs: int('election-timeout'),
    logLevel: level as StoreFlags['logLevel'],
    authToken: authTokenOf(get('auth-token')),
    authTokenTtlSeconds: int('auth-token-ttl'),
    clientTls: tls(''),
    peerTls: tls('peer-'),
  };
  if (flags.authTokenTtlSeconds <= 0) throw new FlagError('--auth-token-ttl must be positive');
  if (bool('enable-v2')) throw new FlagError('--enable-v2: etcron serves the v3 API only');
  if (flags.snapshotCount < 0) throw new FlagError('--snapshot-count must not be negative');
  for (const url of flags.listenMetricsUrls) {
    if (!url.startsWith('http://')) throw new FlagError(`--listen-metrics-urls: only http:// URLs are supported, not ${url}`);
  }
  if (flags.maxTxnOps <= 0) throw new FlagError('--max-txn-ops must be positive');
  if (flags.maxRequestBytes <= 0) throw new FlagError('--max-request-bytes must be positive');
  if (flags.heartbeatIntervalMs <= 0) throw new FlagError('--heartbeat-interval must be positive');
  if (flags.electionTimeoutMs < 5 * flags.heartbeatIntervalMs) {
    throw new FlagError(`--election-timeout[${flags.electionTimeoutMs}ms] should be at least as 5 times as --heartbeat-interval[${flags.heartbeatIntervalMs}ms]`);
  }
  return flags;
}

/** "simple", or "jwt,<options>" as etcd takes them (store/auth/jwt-tokens.ts); key files are read at start. */
function authTokenOf(value: string): StoreFlags['authToken'] {
  const kind = value.split(',')[0];
  if (kind === 'simple') return { kind: 'simple' };
  if (kind === 'jwt') {
    try {
      return { kind: 'jwt', options: parseJwtOptions(value) };
    } catch (err) {
      throw new FlagError(`--auth-token: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new FlagError(`unknown token type "${value}" for --auth-token (simple or jwt)`);
}

function cipherListOf(value: string): string | undefined {
  try {
    return openSslCipherList(value);
  } catch (err) {
    throw new FlagError(`--cipher-suites: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function checkUrl(flag: string, raw: string): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new FlagError(`invalid URL "${raw}" for flag -${flag}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:' && url.protocol !== 'unix:' && url.protocol !== 'unixs:') {
    throw new FlagError(`URL scheme must be http, https, unix, or unixs: ${raw}`);
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    if (url.port === '') throw new FlagError(`URL address does not have the form "host:port": ${raw}`);
    if (url.pathname !== '/' && url.pathname !== '') throw new FlagError(`URL must not contain a path: ${raw}`);
  }
}

/** Parses --auto-compaction-retention: a bare number means hours (periodic) or revisions. */
export function parseRetention(mode: 'periodic' | 'revision', raw: string): number {
  const text = raw.trim();
  if (mode === 'revision') {
    if (!/^\d+$/.test(text)) throw new FlagError(`invalid auto-compaction-retention "${raw}" for revision mode`);
    return Number(text);
  }
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 3600_000;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000 };
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let consumed = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    total += Number(m[1]) * (units[m[2] as string] as number);
    consumed = re.lastIndex;
  }
  if (consumed !== text.length || text.length === 0) throw new FlagError(`invalid auto-compaction-retention "${raw}"`);
  return total;
}
