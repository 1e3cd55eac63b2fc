import { Option, type Command } from 'commander';
import type { LevelWithSilent } from 'pino';
import { createLogger, LOG_LEVELS } from '../shared/log.js';
import { offsetClock, systemClock } from '../shared/clock.js';
import { resolveCredentials, type EtcdCredentials } from '../shared/etcd/credentials.js';
// master/ and worker/ (etcd3, gRPC) load only when a daemon starts: client commands stay quick.
const DEFAULT_API_HOST = '127.0.0.1';
const DEFAULT_API_PORT = 7070;
const DEFAULT_MASTER_LEASE_TTL_SECONDS = 5;
import { CliError } from './scheduler-api-client.js';
import { action, ENDPOINTS_HELP, tlsFilesOf, withStoreTlsOptions, type StoreTlsFlags } from './scheduler-common.js';

interface DaemonFlags extends StoreTlsFlags {
  readonly endpoints?: string;
  readonly user?: string;
  readonly password?: string;
  readonly id?: string;
  readonly leaseTtl?: string;
  readonly logLevel: LevelWithSilent;
}

interface MasterFlags extends DaemonFlags {
  readonly api?: string;
  readonly advertiseApiUrl?: string;
  readonly apiToken?: string;
}

interface WorkerFlags extends DaemonFlags {
  readonly tags?: string;
  readonly takeoverDelay?: string;
  readonly claimAhead?: string;
  readonly clockOffset?: string;
  readonly metricsAddr?: string;
}

/** "1s", "500ms" or a bare number of milliseconds (the flag says ms). */
function parseMs(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(-?\d+)(ms|s)?$/.exec(value.trim());
  const n = match === null ? Number.NaN : Number(match[1]) * (match[2] === 's' ? 1000 : 1);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new CliError(`${flag}: expected milliseconds from ${min} to ${max} (got ${JSON.stringify(value)})`);
  }
  return n;
}

/** "127.0.0.1:7070", "http://127.0.0.1:7070" or ":7070" → host and port. */
export function parseListenAddress(value: string, flag = '--api'): { host: string; port: number } {
  const text = value.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  const colon = text.lastIndexOf(':');
  const host = colon <= 0 ? DEFAULT_API_HOST : text.slice(0, colon).replace(/^\[|\]$/g, '');
  const portText = colon < 0 ? text : text.slice(colon + 1);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || !Number.isSafeInteger(port) || port > 65_535) {
    throw new CliError(`${flag}: expected host:port to listen on (got ${JSON.stringify(value)})`);
  }
  return { host, port };
}

function parseLeaseTtl(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 2 || n > 300) {
    throw new CliError(`--lease-ttl: expected whole seconds from 2 to 300 (got ${JSON.stringify(value)})`);
  }
  return n;
}

/** Resolves on SIGINT or SIGTERM, so daemons stop cleanly (resign, revoke leases) before exit. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/** An option set only when given and not empty (an empty env variable means unset). */
function optionalString<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined || value === '' ? {} : ({ [key]: value } as Record<K, string>);
}

function credentialsOf(flags: DaemonFlags): { credentials?: EtcdCredentials } {
  const credentials = resolveCredentials(flags.user, flags.password);
  return credentials === undefined ? {} : { credentials };
}

function daemonOptions(command: Command): Command {
  return withStoreTlsOptions(command)
    .option('--endpoints <list>', ENDPOINTS_HELP)
    .option('--user <name[:password]>', 'store user when etcd auth is enabled (env ETCRON_USER)')
    .option('--password <password>', 'password of --user (env ETCRON_PASSWORD)')
    .option('--id <id>', 'unique id (default <hostname>-<random>)')
    .option('--lease-ttl <seconds>', 'TTL of this process\'s lease in seconds')
    .addOption(new Option('--log-level <level>', 'log level (logs go to stderr)').choices(LOG_LEVELS).default('info'));
}

export function registerDaemonCommands(program: Command): void {
  daemonOptions(
    program
      .command('master')
      .description('run a scheduler master: job API, leader election, housekeeping by the leader'),
  )
    .option('--api <host:port>', `address the HTTP API listens on (default ${DEFAULT_API_HOST}:${DEFAULT_API_PORT})`)
    .option('--advertise-api-url <url>', 'API URL announced to clients under /cron/masters/ (env ETCRON_ADVERTISE_API_URL; '
      + 'default the --api address, with a wildcard host replaced by this host name)')
    .option('--api-token <secret>', 'also accept "Authorization: Bearer <secret>"; the API then requires credentials (env ETCRON_API_TOKEN)')
    .addHelpText('after', `\nThe lease TTL (default ${DEFAULT_MASTER_LEASE_TTL_SECONDS} s) bounds how long a dead leader blocks a standby.`)
    .action(action(async (flags: MasterFlags) => {
      const listen = parseListenAddress(flags.api ?? `${DEFAULT_API_HOST}:${DEFAULT_API_PORT}`);
      const ttl = parseLeaseTtl(flags.leaseTtl);
      const logger = createLogger(flags.logLevel, { process: 'master' });
      const { startMaster } = await import('../master/index.js');
      const master = await startMaster({
        apiHost: listen.host,
        apiPort: listen.port,
        logger,
        ...optionalString('advertiseApiUrl', flags.advertiseApiUrl ?? process.env['ETCRON_ADVERTISE_API_URL']),
        ...optionalString('apiToken', flags.apiToken ?? process.env['ETCRON_API_TOKEN']),
        ...(flags.endpoints === undefined ? {} : { endpoints: flags.endpoints }),
        tls: tlsFilesOf(flags),
        ...credentialsOf(flags),
        ...(flags.id === undefined ? {} : { id: flags.id }),
        ...(ttl === undefined ? {} : { leaseTtlSeconds: ttl }),
      }).catch((err: unknown) => {
        throw new CliError(`cannot start master: ${err instanceof Error ? err.message : String(err)}`);
      });
      const advertised = master.advertisedApiUrl === master.apiUrl ? '' : ` (advertised as ${master.advertisedApiUrl})`;
      process.stdout.write(`master ${master.id} serving ${master.apiUrl}${advertised}\n`);
      const signal = await untilSignal();
      logger.info({ signal }, 'stopping');
      await master.stop();
    }));

  daemonOptions(program.command('worker').description('run a scheduler worker: claims due slots and runs jobs'))
    .option('--tags <a,b>', 'routing tags: the worker runs jobs whose tags it all has')
    .option('--takeover-delay <ms>', 'how long after a slot a non-preferred worker tries the claim (default 1000)')
    .option('--claim-ahead <ms>', 'how long before a slot the claim of a job allowing overlap is sent; the run starts at the slot (default 1500, 0: at the slot)')
    .option('--metrics-addr <host:port>', 'serve Prometheus metrics at http://<host:port>/metrics (default: off)')
    .addOption(new Option('--clock-offset <ms>', 'shift this worker\'s wall clock (clock-skew tests)').hideHelp())
    .action(action(async (flags: WorkerFlags) => {
      const ttl = parseLeaseTtl(flags.leaseTtl);
      const takeoverDelayMs = parseMs('--takeover-delay', flags.takeoverDelay, 0, 600_000);
      const claimAheadMs = parseMs('--claim-ahead', flags.claimAhead, 0, 60_000);
      const clockOffsetMs = parseMs('--clock-offset', flags.clockOffset, -3_600_000, 3_600_000);
      const logger = createLogger(flags.logLevel, { process: 'worker' });
      const metricsListen = flags.metricsAddr === undefined ? undefined : parseListenAddress(flags.metricsAddr, '--metrics-addr');
      const tags = flags.tags?.split(',').map((t) => t.trim()).filter((t) => t.length > 0);
      // Before the worker: a busy --metrics-addr fails the start before any slot is claimed.
      const metrics = metricsListen === undefined ? undefined : await startWorkerMetrics(metricsListen, logger);
      const { startWorker } = await import('../worker/index.js');
      const worker = await startWorker({
        logger,
        client: { ...(flags.endpoints === undefined ? {} : { endpoints: flags.endpoints }), ...credentialsOf(flags), tls: tlsFilesOf(flags) },
        ...(flags.id === undefined ? {} : { id: flags.id }),
        ...(tags === undefined ? {} : { tags }),
        ...(ttl === undefined ? {} : { leaseTtlSeconds: ttl }),
        ...(takeoverDelayMs === undefined ? {} : { takeoverDelayMs }),
        ...(claimAheadMs === undefined ? {} : { claimAheadMs }),
        ...(clockOffsetMs === undefined ? {} : { clock: offsetClock(systemClock, clockOffsetMs) }),
      }).catch((err: unknown) => {
        throw new CliError(`cannot start worker: ${err instanceof Error ? err.message : String(err)}`);
      });
      process.stdout.write(`worker ${worker.id} started\n`);
      const signal = await untilSignal();
      logger.info({ signal }, 'stopping');
      await worker.stop();
      await metrics?.close();
    }));
}

async function startWorkerMetrics(
  listen: { host: string; port: number },
  logger: ReturnType<typeof createLogger>,
): Promise<{ close(): Promise<void> }> {
  const { startMetricsServer } = await import('../shared/metrics/metrics-server.js');
  const server = await startMetricsServer(listen.host, listen.port, logger).catch((err: unknown) => {
    throw new CliError(`--metrics-addr: cannot listen: ${err instanceof Error ? err.message : String(err)}`);
  });
  process.stdout.write(`metrics at ${server.url}\n`);
  return server;
}
