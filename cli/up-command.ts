import { resolve, join } from 'node:path';
import { Option, type Command } from 'commander';
import type { LevelWithSilent } from 'pino';
import { createLogger, LOG_LEVELS } from '../shared/log.js';
import { resolveClientTlsFiles, type ClientTlsFiles } from '../shared/etcd/client-tls.js';
import { tlsFilesOf, type StoreTlsFlags } from './scheduler-common.js';

interface UpFlags extends StoreTlsFlags {
  readonly dataDir: string;
  readonly clientPort: string;
  readonly api: string;
  readonly logLevel: LevelWithSilent;
}

type CompleteTls = Required<ClientTlsFiles>;

/**
 * `up` with TLS: the bundled store serves https with --cert/--key and accepts only clients with a
 * certificate from --cacert; the embedded master and worker present the same certificate, so it
 * needs both serverAuth and clientAuth. Hence all three files or none (flags, else ETCRON_* env).
 */
function upTls(flags: StoreTlsFlags): CompleteTls | null {
  const files = resolveClientTlsFiles(tlsFilesOf(flags));
  const { caCertFile, certFile, keyFile } = files;
  if (caCertFile === undefined && certFile === undefined && keyFile === undefined) return null;
  if (caCertFile === undefined || certFile === undefined || keyFile === undefined) {
    throw new Error('TLS needs --cacert, --cert and --key together (or ETCRON_CACERT, ETCRON_CERT, ETCRON_KEY)');
  }
  return { caCertFile: resolve(caCertFile), certFile: resolve(certFile), keyFile: resolve(keyFile) };
}

function port(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65_535) throw new Error(`${flag}: expected a port from 1 to 65535 (got ${JSON.stringify(value)})`);
  return n;
}

/**
 * `etcron up`: the embedded default. One process runs a single-member bundled store (data in
 * --data-dir), a master and a worker, all on 127.0.0.1, and stops them in reverse order on
 * Ctrl-C or SIGTERM. A second `up` on the same data dir fails on the store's exclusive lock.
 */
export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('run everything on this machine: a bundled single-member store, a master and a worker')
    .option('--data-dir <dir>', 'where the store keeps its data', './etcron-data')
    .option('--client-port <port>', 'store client port on 127.0.0.1 (etcdctl and the CLI use it)', '2379')
    .option('--api <port>', 'master API port on 127.0.0.1', '7070')
    .option('--cacert <file>', 'serve the store over https; only clients with a certificate from this CA get in (env ETCRON_CACERT)')
    .option('--cert <file>', 'the store\'s certificate, also presented by the master and worker (env ETCRON_CERT)')
    .option('--key <file>', 'key of --cert (env ETCRON_KEY)')
    .addOption(new Option('--log-level <level>', 'log level (logs go to stderr)').choices(LOG_LEVELS).default('warn'))
    .action(async (flags: UpFlags) => {
      const clientPort = port(flags.clientPort, '--client-port');
      const apiPort = port(flags.api, '--api');
      const dataDir = resolve(flags.dataDir);
      const tls = upTls(flags);
      const clientUrl = `${tls === null ? 'http' : 'https'}://127.0.0.1:${clientPort}`;
      const logger = createLogger(flags.logLevel, { process: 'up' });
      const { startStore, startHeapTuning, parseStoreFlags } = await import('../store/main.js');
      const storeFlags = parseStoreFlags([
        '--name', 'etcron',
        '--data-dir', join(dataDir, 'store'),
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--log-level', flags.logLevel === 'silent' || flags.logLevel === 'trace' ? 'error' : flags.logLevel,
        ...(tls === null ? [] : [
          '--cert-file', tls.certFile, '--key-file', tls.keyFile, '--trusted-ca-file', tls.caCertFile, '--client-cert-auth',
        ]),
      ], {});
      const store = await startStore(storeFlags);
      startHeapTuning(store.logger.child({ component: 'heap' }));
      const endpoints = tls === null ? `127.0.0.1:${clientPort}` : clientUrl;
      const clientTls = tls ?? {};
      const ctlTls = tls === null ? '' : ` --cacert ${tls.caCertFile} --cert ${tls.certFile} --key ${tls.keyFile}`;
      const { startMaster } = await import('../master/index.js');
      const { startWorker } = await import('../worker/index.js');
      let master: Awaited<ReturnType<typeof startMaster>> | undefined;
      let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
      const stopAll = async (): Promise<void> => {
        await worker?.stop().catch(() => {});
        await master?.stop().catch(() => {});
        await store.close();
      };
      try {
        master = await startMaster({ endpoints, tls: clientTls, apiHost: '127.0.0.1', apiPort, logger });
        worker = await startWorker({ client: { endpoints, tls: clientTls }, logger });
      } catch (err) {
        await stopAll();
        throw err;
      }
      process.stdout.write([
        'etcron is up.',
        `  store   ${clientUrl}   (data in ${dataDir})`,
        `  master  ${master.apiUrl}`,
        `  worker  ${worker.id}`,
        `  web UI  ${master.apiUrl}/`,
        '',
        'Try:',
        '  etcron job add hello --schedule "*/5 * * * * *" --command "date >> /tmp/etcron-hello.txt"',
        '  etcron job history hello',
        '  etcdctl --endpoints ' + endpoints + ctlTls + ' get --prefix /cron/',
        '',
        'Ctrl-C stops everything.',
        '',
      ].join('\n'));
      await new Promise<void>((done) => {
        const onSignal = (): void => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          done();
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
      process.stdout.write('stopping…\n');
      await stopAll();
      process.exit(0);
    });
}
