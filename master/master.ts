import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { authRefusal, checkSchedulerAccess } from '../shared/etcd/access-check.js';
import { createEtcdClient, resolveCredentials, type EtcdCredentials } from '../shared/etcd/client.js';
import { systemClock, type Clock } from '../shared/clock.js';
import type { ClientTlsFiles } from '../shared/etcd/client-tls.js';
import { createLogger, type Logger } from '../shared/log.js';
import { readLeader, startElection, type LeaderTerm } from './election.js';
import { startApiServer, ok, type Route } from './http-server.js';
import { jobRoutes, revisionOf } from './job-routes.js';
import { alertRoutes } from './alert-routes.js';
import { inspectRoutes } from './inspect-routes.js';
import type { HousekeepingHealth } from './housekeeping/index.js';
import { metricsRoute } from './metrics-route.js';
import { overviewRoute } from './overview-route.js';
import { uiRoutes } from './ui-routes.js';
import { startLeaderWork, type LeaderWork } from './leader-work.js';
import { startRegistration } from './registration.js';
import { mastersRoute } from './masters-route.js';
import { healthRoute } from './health-route.js';
import { advertisedApiUrl } from './advertise-url.js';
import { apiAuthenticator, storeUserVerifier } from './api-auth.js';
import { validateMasterId } from '../shared/keys.js';

/** Campaign keys of masters; the lowest create revision leads. */
export const MASTER_ELECTION_PREFIX = '/cron/master/election/';
export const DEFAULT_API_HOST = '127.0.0.1';
export const DEFAULT_API_PORT = 7070;
export const DEFAULT_MASTER_LEASE_TTL_SECONDS = 5;

export interface MasterOptions {
  /** Store endpoints; falls back to ETCRON_ENDPOINTS, then 127.0.0.1:2379. */
  readonly endpoints?: string | readonly string[];
  /** Store client TLS files; each falls back to ETCRON_CACERT / ETCRON_CERT / ETCRON_KEY. */
  readonly tls?: ClientTlsFiles;
  /** Store user; falls back to ETCRON_USER / ETCRON_PASSWORD, then none. */
  readonly credentials?: EtcdCredentials;
  readonly id?: string;
  readonly apiHost?: string;
  /** 0 picks a free port (tests). */
  readonly apiPort?: number;
  /** The API URL clients should use; default from the listen address (see advertise-url.ts). */
  readonly advertiseApiUrl?: string;
  /**
   * A shared secret the API accepts as `Authorization: Bearer`; setting it makes the API require
   * credentials even on a store without auth.
   */
  readonly apiToken?: string;
  readonly leaseTtlSeconds?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Replaces the leader's work (housekeeping) in tests. */
  readonly leaderWork?: (client: Etcd3, term: LeaderTerm) => LeaderWork;
}

export interface Master {
  readonly id: string;
  /** Where the API listens. */
  readonly apiUrl: string;
  /** What this master announces to clients under /cron/masters/<id>. */
  readonly advertisedApiUrl: string;
  isLeader(): boolean;
  stop(): Promise<void>;
}

/**
 * Starts one master: it serves the API at once (leader or standby: every write is a
 * compare-and-set txn, so any master may take it) and campaigns for leadership; only the leader
 * runs housekeeping, and it stops that work as soon as it stops leading.
 */
export async function startMaster(options: MasterOptions = {}): Promise<Master> {
  const id = options.id ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
  // The id is a key segment of /cron/masters/<id>: a '/' would nest one master under another.
  const idCheck = validateMasterId(id);
  if (!idCheck.ok) throw new Error(idCheck.reason);
  const root = (options.logger ?? createLogger('info')).child({ master: id });
  const logger = root.child({ component: 'master' });
  const clock = options.clock ?? systemClock;
  const clientOptions = {
    ...(options.endpoints === undefined ? {} : { endpoints: options.endpoints }),
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
  };
  const client = createEtcdClient(clientOptions);
  // The election's and the registration's leases on a connection of their own: on the shared one
  // their keep-alive answers would queue behind the leader work's large reads (housekeeping of
  // 10,000 jobs), and a leader that misses its renewals hands over while it is working fine.
  const sessionClient = createEtcdClient({ ...clientOptions, ownConnection: true });
  const closeClients = (): void => {
    sessionClient.close();
    client.close();
  };
  const startedAtMs = clock.nowMs();
  const user = options.credentials?.user ?? resolveCredentials(undefined, undefined)?.user;
  const ttlSeconds = options.leaseTtlSeconds ?? DEFAULT_MASTER_LEASE_TTL_SECONDS;
  await probeStore(client, logger, user).then(() => checkSchedulerAccess(client, user)).catch((err: unknown) => {
    closeClients();
    throw err;
  });
  let work: LeaderWork | undefined;
  let workStopping: Promise<void> = Promise.resolve();
  const makeWork = options.leaderWork ?? ((c: Etcd3, term: LeaderTerm) => startLeaderWork(c, term, clock, root));

  // The API starts before the election, so a request may ask before the election exists.
  let isLeader = (): boolean => false;
  const apiHost = options.apiHost ?? DEFAULT_API_HOST;
  // A user was accepted by the store at start, so the store has auth on: the API requires it too.
  const authenticate = apiAuthenticator({
    ...(user === undefined ? {} : { verifyUser: storeUserVerifier(client) }),
    ...(options.apiToken === undefined || options.apiToken === '' ? {} : { token: options.apiToken }),
    clock,
    logger: root.child({ component: 'api-auth' }),
  });
  const api = await startApiServer(
    apiHost,
    options.apiPort ?? DEFAULT_API_PORT,
    [
      statusRoute(client, id, startedAtMs, () => isLeader(), () => work?.health?.() ?? null),
      mastersRoute(client, MASTER_ELECTION_PREFIX), healthRoute(client, id),
      ...jobRoutes(client, clock), ...inspectRoutes(client, clock), ...alertRoutes(client),
      metricsRoute(() => isLeader()), overviewRoute(client, clock),
      ...uiRoutes(root.child({ component: 'ui' })),
    ],
    root.child({ component: 'api' }),
    authenticate,
  ).catch((err: unknown) => {
    closeClients();
    throw err;
  });
  let advertised: string;
  let registrar: Awaited<ReturnType<typeof startRegistration>>;
  try {
    advertised = advertisedApiUrl(apiHost, api.port, options.advertiseApiUrl);
    registrar = await startRegistration({
      client: sessionClient,
      registration: { id, apiUrl: advertised, startedAtMs, hostname: hostname(), pid: process.pid },
      ttlSeconds,
      clock,
      logger: root.child({ component: 'registration' }),
    });
  } catch (err) {
    await api.close().finally(closeClients);
    throw err;
  }

  const election = startElection({
    client: sessionClient,
    prefix: MASTER_ELECTION_PREFIX,
    value: JSON.stringify({ id, api: advertised, pid: process.pid }),
    ttlSeconds,
    clock,
    logger,
    onElected: (term) => {
      registrar.setLeaderSince(clock.nowMs());
      // A new term waits for the previous term's work to finish stopping: never two at once.
      void workStopping.then(() => {
        if (election.term() !== term) return;
        work = makeWork(client, term);
      });
    },
    onDeposed: () => {
      registrar.setLeaderSince(undefined);
      const stopping = work;
      work = undefined;
      workStopping = stopping === undefined ? workStopping : stopping.stop().catch((err: unknown) => {
        logger.warn({ err }, 'leader work did not stop cleanly');
      });
    },
  });

  isLeader = () => election.isLeader();

  return {
    id,
    apiUrl: api.url,
    advertisedApiUrl: advertised,
    isLeader: () => election.isLeader(),
    async stop(): Promise<void> {
      await election.stop();
      // Deregistered before the API closes: a client that still finds this master gets refused
      // connections and fails over, and the list stops naming it at once.
      await registrar.stop();
      await workStopping;
      await api.close();
      closeClients();
      logger.info('master stopped');
    },
  };
}

/**
 * GET /v1/status: which master answered, whether it leads, who leads, the store revision, and on
 * the leader the health of its housekeeping.
 */
function statusRoute(
  client: Etcd3, id: string, startedAtMs: number, isLeader: () => boolean,
  housekeeping: () => HousekeepingHealth | null,
): Route {
  return {
    method: 'GET',
    path: '/v1/status',
    handler: async () => {
      const leader = await readLeader(client, MASTER_ELECTION_PREFIX);
      const status = await client.maintenance.status();
      return ok({
        master: id,
        isLeader: isLeader(),
        leader: leader === undefined ? null : parseLeaderValue(leader.value),
        leaderSinceRevision: leader?.createRevision ?? null,
        revision: revisionOf(status.header.revision, 'revision'),
        startedAt: new Date(startedAtMs).toISOString(),
        housekeeping: housekeeping(),
      });
    },
  };
}

/** How long a starting master tries to reach the store before it gives up with a clear error. */
const STORE_PROBE_TIMEOUT_MS = 8_000;
const STORE_PROBE_INTERVAL_MS = 250;

async function probeStore(client: Etcd3, logger: Logger, user: string | undefined): Promise<void> {
  const deadline = Date.now() + STORE_PROBE_TIMEOUT_MS;
  let lastError: unknown = undefined;
  // Bounded: one attempt per interval until the deadline.
  while (Date.now() < deadline) {
    try {
      // One slow answer is not a failure: each attempt may use all the time that is left, since
      // etcd3's circuit breaker would fail quick retries after a timeout without asking the store.
      await client.maintenance.status({ deadline });
      return;
    } catch (err) {
      // Missing, unneeded or wrong credentials: waiting will not help.
      const refusal = authRefusal(err, user);
      if (refusal !== null) throw refusal;
      // The first failure says why (refused, unknown host); later ones only say "circuit open".
      lastError ??= err;
      await new Promise((resolve) => setTimeout(resolve, STORE_PROBE_INTERVAL_MS));
    }
  }
  logger.error({ err: lastError }, 'store unreachable');
  const detail = lastError instanceof Error ? lastError.message : String(lastError);
  throw new Error(`store unreachable after ${STORE_PROBE_TIMEOUT_MS} ms (${detail})`);
}

function parseLeaderValue(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}
