import { Etcd3, type IOptions } from 'etcd3';

export const DEFAULT_ENDPOINT = '127.0.0.1:2379';
/** A dead endpoint must fail fast rather than hang a CLI command or a worker start. */
export const DIAL_TIMEOUT_MS_DEFAULT = 3_000;

export interface EtcdClientOptions {
  /** Comma-separated host:port list or array; falls back to env ETCRON_ENDPOINTS, then 127.0.0.1:2379. */
  readonly endpoints?: string | readonly string[];
  readonly dialTimeoutMs?: number;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export function resolveEndpoints(options: EtcdClientOptions = {}): string[] {
  const env = options.env ?? process.env;
  const raw = options.endpoints ?? env['ETCRON_ENDPOINTS'] ?? DEFAULT_ENDPOINT;
  const list = (typeof raw === 'string' ? raw.split(',') : [...raw]).map((e) => e.trim()).filter((e) => e.length > 0);
  const endpoints = list.length > 0 ? list : [DEFAULT_ENDPOINT];
  return endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`));
}

export function createEtcdClient(options: EtcdClientOptions = {}): Etcd3 {
  const config: IOptions = {
    hosts: resolveEndpoints(options),
    dialTimeout: options.dialTimeoutMs ?? DIAL_TIMEOUT_MS_DEFAULT,
  };
  return new Etcd3(config);
}
