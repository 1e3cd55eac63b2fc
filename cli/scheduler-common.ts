import { Option, type Command } from 'commander';
import { ApiClient, ApiRefusal, CliError, parseApiUrls, type ApiCredentials } from './scheduler-api-client.js';
import { resolveCredentials } from '../shared/etcd/credentials.js';
import { FLAG_FOR_FIELD } from './scheduler-job-flags.js';
import type { OutputFormat } from './scheduler-format.js';
import type { ClientTlsFiles } from '../shared/etcd/client-tls.js';

export const API_HELP =
  'seed master API URL(s), comma-separated: the first that answers lists every live master, ' +
  'which the command then uses (env ETCRON_API, default http://127.0.0.1:7070)';
export const ENDPOINTS_HELP =
  'store endpoints host:port or https://host:port, comma-separated (env ETCRON_ENDPOINTS, default 127.0.0.1:2379)';

/** etcdctl's TLS flags for reaching the store (master, worker). */
export interface StoreTlsFlags {
  readonly cacert?: string;
  readonly cert?: string;
  readonly key?: string;
}

export function withStoreTlsOptions(command: Command): Command {
  return command
    .option('--cacert <file>', 'verify the store\'s certificate with this CA bundle (env ETCRON_CACERT)')
    .option('--cert <file>', 'client certificate for the store (env ETCRON_CERT)')
    .option('--key <file>', 'key of --cert (env ETCRON_KEY)');
}

/** Only the flags given: the environment fills the rest in shared/etcd/client-tls.ts. */
export function tlsFilesOf(flags: StoreTlsFlags): ClientTlsFiles {
  return {
    ...(flags.cacert === undefined ? {} : { caCertFile: flags.cacert }),
    ...(flags.cert === undefined ? {} : { certFile: flags.cert }),
    ...(flags.key === undefined ? {} : { keyFile: flags.key }),
  };
}

/** Where the API is and who is asking. */
export interface ApiAccessFlags {
  readonly api?: string;
  readonly user?: string;
  readonly password?: string;
  readonly apiToken?: string;
}

export interface ClientFlags extends ApiAccessFlags {
  readonly output: OutputFormat;
}

/** The options that reach a master's API: its URLs and the credentials it may require. */
export function withApiAccessOptions(command: Command): Command {
  return command
    .addOption(new Option('--api <urls>', API_HELP))
    .option('--user <name[:password]>', 'store user, when the store (and so the API) has auth enabled (env ETCRON_USER)')
    .option('--password <password>', 'password of --user (env ETCRON_PASSWORD)')
    .option('--api-token <secret>', 'bearer token a master was given with --api-token (env ETCRON_API_TOKEN)');
}

/** Adds the options every API client command takes. */
export function withClientOptions(command: Command): Command {
  return withApiAccessOptions(command)
    .addOption(new Option('-o, --output <format>', 'table for people, json for scripts').choices(['table', 'json']).default('table'));
}

/** A store user (flags, else ETCRON_USER / ETCRON_PASSWORD) wins over a bearer token. */
export function apiCredentialsOf(flags: ApiAccessFlags): ApiCredentials | undefined {
  const user = resolveCredentials(flags.user, flags.password);
  if (user !== undefined) return { kind: 'basic', user: user.user, password: user.password };
  const token = flags.apiToken ?? process.env['ETCRON_API_TOKEN'];
  return token === undefined || token === '' ? undefined : { kind: 'bearer', token };
}

export function apiClient(flags: ApiAccessFlags): ApiClient {
  const credentials = apiCredentialsOf(flags);
  return new ApiClient({ seeds: parseApiUrls(flags.api), ...(credentials === undefined ? {} : { credentials }) });
}

/**
 * Runs a command body and turns failures into one readable message and a non-zero exit code:
 * 1 for usage and connection errors, 2 for refusals (invalid spec, conflict), 3 for not found.
 */
export function action<A extends unknown[]>(body: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A): Promise<void> => {
    try {
      await body(...args);
    } catch (err) {
      process.stderr.write(describeError(err));
      process.exitCode = err instanceof CliError ? err.exitCode : 1;
    }
  };
}

function describeError(err: unknown): string {
  if (err instanceof ApiRefusal && err.fields.length > 0) {
    const lines = err.fields.map((f) => {
      const flag = FLAG_FOR_FIELD[f.field];
      return `  ${f.field}${flag === undefined ? '' : ` (${flag})`}: ${f.message}`;
    });
    return `etcron: ${err.code === 'ETCRON_INVALID_SPEC' ? 'invalid job spec' : err.message}\n${lines.join('\n')}\n`;
  }
  const message = err instanceof Error ? err.message : String(err);
  return `etcron: ${message}\n`;
}
