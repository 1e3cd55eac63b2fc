import { hostname } from 'node:os';

/** A wildcard listen address says where to listen, not where to connect. */
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]', '']);

export class AdvertiseUrlError extends Error {
  override readonly name = 'AdvertiseUrlError';
}

/**
 * The API URL a master announces to clients. An explicit one (--advertise-api-url) is taken as
 * given; otherwise the listen host, except that a wildcard listen address is replaced by this
 * machine's host name (in docker-compose a container's host name resolves on its network; give
 * the service name explicitly to be sure).
 */
export function advertisedApiUrl(listenHost: string, listenPort: number, explicit?: string): string {
  if (explicit !== undefined) return checkedUrl(explicit);
  const host = WILDCARD_HOSTS.has(listenHost) ? hostname() : listenHost;
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${bracketed}:${listenPort}`;
}

function checkedUrl(text: string): string {
  const withScheme = /^https?:\/\//.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new AdvertiseUrlError(`advertise API URL ${JSON.stringify(text)} is not a URL`);
  }
  if (WILDCARD_HOSTS.has(url.hostname)) {
    throw new AdvertiseUrlError(`advertise API URL ${JSON.stringify(text)} names a wildcard address clients cannot connect to`);
  }
  return withScheme.replace(/\/+$/, '');
}
