// Kept apart from client.ts so that CLI commands can read credentials without loading etcd3.

/** A store user (etcd auth); the client authenticates once and sends the token with each call. */
export interface EtcdCredentials {
  readonly user: string;
  readonly password: string;
}

/**
 * Credentials from flags or the environment. `user` may be "name:password" as etcdctl takes it;
 * a separate password wins. No user: none (the store must then have auth disabled).
 */
export function resolveCredentials(
  user: string | undefined,
  password: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): EtcdCredentials | undefined {
  const given = user ?? env['ETCRON_USER'];
  if (given === undefined || given === '') return undefined;
  const colon = given.indexOf(':');
  const name = colon < 0 ? given : given.slice(0, colon);
  const inline = colon < 0 ? undefined : given.slice(colon + 1);
  return { user: name, password: password ?? inline ?? env['ETCRON_PASSWORD'] ?? '' };
}
