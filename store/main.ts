import { mkdirSync } from 'node:fs';
import tlsModule from 'node:tls';
import { JwtTokens } from './auth/jwt-tokens.js';
import { createLogger, type Logger } from '../shared/log.js';
import { ApiContext } from './api/context.js';
import { createGrpcServer } from './api/grpc-server.js';
import { listenClients, listenMetrics } from './api/client-listener.js';
import { createHttp1Handler } from './api/gateway/index.js';
import { DEFAULT_QUOTA_BYTES, FlagError, parseRetention, type StoreFlags } from './flags.js';
import { clusterIdOf, parseInitialCluster } from './membership.js';
import { resolveTls } from './tls/tls-config.js';
import { EtcdServer, type MemberInfo } from './server/etcd-server.js';
import { fetchClusterView } from './transport/peer-transport.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AutoCompactionConfig } from './server/auto-compactor.js';
import { checkInitialHashKV, localHashKV } from './server/initial-corrupt-check.js';

export { parseStoreFlags, FlagError, FLAG_SPECS } from './flags.js';
export { DataInconsistencyError } from './server/initial-corrupt-check.js';
export { startHeapTuning } from './heap-tuning.js';

/** How long a joining member waits for each existing member to describe the cluster. */
const JOIN_FETCH_TIMEOUT_MS = 5_000;

export interface RunningStore {
  readonly server: EtcdServer;
  readonly logger: Logger;
  readonly clientPorts: readonly number[];
  close(): Promise<void>;
}

const PINO_LEVELS = { debug: 'debug', info: 'info', warn: 'warn', error: 'error', panic: 'fatal', fatal: 'fatal' } as const;

/** Starts one store member from etcd-style flags. The only store file that reads flags. */
export async function startStore(flags: StoreFlags): Promise<RunningStore> {
  const members = parseInitialCluster(flags.initialCluster, flags.initialClusterToken);
  const self = members.find((m) => m.name === flags.name);
  if (self === undefined) {
    throw new FlagError(`couldn't find local name "${flags.name}" in the initial cluster configuration`);
  }
  const advertised = [...flags.initialAdvertisePeerUrls].sort().join(',');
  if ([...self.peerUrls].sort().join(',') !== advertised) {
    throw new FlagError(`--initial-cluster has ${flags.name}=${self.peerUrls.join(',')} but missing from --initial-advertise-peer-urls=${flags.initialAdvertisePeerUrls.join(',')}`);
  }
  for (const url of [...flags.listenClientUrls, ...flags.listenPeerUrls]) {
    if (!url.startsWith('http://') && !url.startsWith('https://')) throw new FlagError(`unix sockets are not supported: ${url}`);
  }
  // --cipher-suites applies to every TLS listener and dialer of this member, client and peer, as
  // in etcd: set once, before any TLS context exists (grpc-js builds its own from the default).
  // (The module object is shared with every require('tls'); its typing calls the field read-only.)
  if (flags.cipherList !== undefined) Object.assign(tlsModule, { DEFAULT_CIPHERS: flags.cipherList });
  const logger = createLogger(PINO_LEVELS[flags.logLevel], { member: flags.name });
  const tlsLog = logger.child({ component: 'tls' });
  const now = new Date();
  const clientTls = resolveTls('client', flags.clientTls, flags.listenClientUrls, flags.dataDir, tlsLog, now);
  const peerTls = resolveTls('peer', flags.peerTls, flags.listenPeerUrls, flags.dataDir, tlsLog, now);
  const retention = parseRetention(flags.autoCompactionMode, flags.autoCompactionRetention);
  const autoCompaction: AutoCompactionConfig | null =
    retention <= 0 ? null : flags.autoCompactionMode === 'periodic' ? { mode: 'periodic', retentionMs: retention } : { mode: 'revision', retention };
  let memberInfos: MemberInfo[] = members.map((m) => ({
    id: m.id, name: m.name, peerUrls: m.peerUrls, clientUrls: m.id === self.id ? flags.advertiseClientUrls : [],
  }));
  // etcd checks only a member that has data from an earlier start; a new one has nothing to compare.
  const hadData = existsSync(join(flags.dataDir, 'member'));
  const isCorruptCheckDue = flags.initialCorruptCheck && hadData;
  let selfId = self.id;
  let clusterId = clusterIdOf(members.map((m) => m.id));
  // Joining: the cluster says who is in it, under which IDs (the data dir keeps them afterwards).
  if (flags.initialClusterState === 'existing' && !hadData) {
    const others = members.filter((m) => m.id !== self.id).flatMap((m) => m.peerUrls);
    if (others.length === 0) throw new FlagError('--initial-cluster-state existing needs the other members in --initial-cluster');
    const view = await fetchClusterView(others, peerTls, JOIN_FETCH_TIMEOUT_MS, logger).catch((err: unknown) => {
      throw new FlagError(err instanceof Error ? err.message : String(err));
    });
    const sameUrls = (a: readonly string[], b: readonly string[]): boolean => [...a].sort().join(',') === [...b].sort().join(',');
    const mine = view.members.find((m) => sameUrls(m.peerUrls, self.peerUrls));
    if (mine === undefined) {
      throw new FlagError(`member ${flags.name} (${self.peerUrls.join(',')}) has not been added to cluster ${view.clusterId.toString(16)}; add it with "etcdctl member add" first`);
    }
    selfId = mine.id;
    clusterId = view.clusterId;
    memberInfos = view.members.map((m) => ({
      id: m.id, name: m.id === mine.id ? flags.name : m.name, peerUrls: m.peerUrls, isLearner: m.isLearner,
      clientUrls: m.id === mine.id ? flags.advertiseClientUrls : [],
    }));
    logger.info({ clusterId: clusterId.toString(16), memberId: selfId.toString(16), members: memberInfos.length }, 'joining an existing cluster');
  }
  let onRemoved: () => void = () => {};
  const server = new EtcdServer({
    name: flags.name,
    dataDir: flags.dataDir,
    member: memberInfos.find((m) => m.id === selfId) as MemberInfo,
    members: memberInfos,
    clusterId,
    strictReconfigCheck: flags.strictReconfigCheck,
    ...(flags.snapshotCount > 0 ? { snapshotCount: flags.snapshotCount } : {}),
    preVote: flags.preVote,
    onRemoved: () => onRemoved(),
    listenPeerUrls: flags.listenPeerUrls,
    peerTls,
    quotaBackendBytes: flags.quotaBackendBytes === 0 ? DEFAULT_QUOTA_BYTES : flags.quotaBackendBytes,
    heartbeatMs: flags.heartbeatIntervalMs,
    electionMs: flags.electionTimeoutMs,
    autoCompaction,
    authTokenTtlMs: flags.authTokenTtlSeconds * 1000,
    ...(flags.authToken.kind === 'jwt' ? { jwt: new JwtTokens(flags.authToken.options) } : {}),
    holdRaft: isCorruptCheckDue,
    logger,
  });
  // Hashed before the member listens for peers or applies anything new: its data as it was on disk.
  const ownHash = isCorruptCheckDue ? localHashKV(server.kv, server.backend) : null;
  const ctx = new ApiContext(server, {
    maxTxnOps: flags.maxTxnOps, maxRequestBytes: flags.maxRequestBytes, maxConcurrentStreams: flags.maxConcurrentStreams,
  }, logger.child({ component: 'api' }));
  const grpcServer = createGrpcServer(ctx, { maxConcurrentStreams: flags.maxConcurrentStreams });
  if (flags.walDir !== '') {
    // etcd writes its Raft log there; etcron's log is a table of the member database, made
    // durable with it (one fsync per batch), so there is nothing to put apart. The directory is
    // created as etcd creates it, so tools that expect it find it, and the log line says why it
    // stays empty.
    mkdirSync(flags.walDir, { recursive: true, mode: 0o700 });
    logger.warn({ walDir: flags.walDir }, '--wal-dir: the Raft log is kept in the member database under --data-dir; this directory stays empty');
  }
  const listeners: { port: number; close(): void }[] = [];
  try {
    await server.listenPeers();
    if (ownHash !== null) {
      // Peers are asked over the peer transport, which already answers their own checks: members
      // restarting together do not wait on each other. Clients are served only once it passed.
      await checkInitialHashKV({
        memberId: server.memberId, local: ownHash, peers: server.peersToCheck(),
        ask: (peer, revision, timeoutMs) => server.askPeerHashKV(peer, revision, timeoutMs),
        timeoutMs: server.proposalTimeoutMs, log: logger.child({ component: 'corrupt-check' }),
      });
      server.releaseRaft();
    }
    for (const url of flags.listenClientUrls) {
      const parsed = new URL(url);
      const tls = parsed.protocol === 'https:' ? clientTls : null;
      listeners.push(await listenClients(grpcServer, ctx, parsed.hostname, Number(parsed.port), tls));
    }
  } catch (err) {
    for (const l of listeners) l.close();
    grpcServer.forceShutdown();
    server.close();
    throw err;
  }
  // --listen-metrics-urls: /metrics and /health on their own plain HTTP ports, as etcd serves them.
  try {
    for (const url of flags.listenMetricsUrls) {
      const parsed = new URL(url);
      listeners.push(await listenMetrics(createHttp1Handler(grpcServer, ctx), parsed.hostname, Number(parsed.port)));
    }
  } catch (err) {
    for (const l of listeners) l.close();
    grpcServer.forceShutdown();
    server.close();
    throw err;
  }
  const clientPorts = listeners.map((l) => l.port);
  logger.info({ clientUrls: flags.listenClientUrls, dataDir: flags.dataDir }, 'serving client requests');
  const running: RunningStore = {
    server,
    logger,
    clientPorts,
    close: async () => {
      for (const l of listeners) l.close();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => { grpcServer.forceShutdown(); resolve(); }, 2000);
        grpcServer.tryShutdown(() => { clearTimeout(timer); resolve(); });
      });
      server.close();
    },
  };
  // As etcd: a member removed from its cluster stops serving and its process ends.
  onRemoved = () => {
    logger.warn('the member has been permanently removed from the cluster; exiting');
    void running.close().finally(() => process.exit(0));
  };
  return running;
}
