import { EtcdPermissionDeniedError, type Etcd3 } from 'etcd3';
import { JOBS_PREFIX, ROOT_PREFIX } from '../keys.js';

/** The scheduler lacks a permission it needs on the store; the message names it and the user. */
export class StoreAccessError extends Error {
  override readonly name = 'StoreAccessError';
}

const USER_EMPTY = 'etcdserver: user name is empty';
const AUTH_NOT_ENABLED = 'etcdserver: authentication is not enabled';
const AUTH_FAILED = 'etcdserver: authentication failed';

/**
 * A refusal that waiting will not cure, in words for the operator: credentials missing, given
 * for a store without auth, or wrong. Null for any other error.
 */
export function authRefusal(err: unknown, user: string | undefined): StoreAccessError | null {
  const message = err instanceof Error ? err.message : '';
  if (message.includes(USER_EMPTY)) {
    return new StoreAccessError(
      'the store requires authentication: pass --user and --password (or ETCRON_USER and ETCRON_PASSWORD)',
    );
  }
  if (message.includes(AUTH_NOT_ENABLED) && user !== undefined) {
    return new StoreAccessError(
      `user ${user} was given but the store does not have auth enabled: drop --user (or ETCRON_USER)`,
    );
  }
  if (message.includes(AUTH_FAILED)) {
    return new StoreAccessError(
      `authentication failed for user ${user ?? ''}: wrong user or password`,
    );
  }
  return null;
}

function describe(err: unknown, what: string, user: string | undefined): Error {
  const who = user === undefined ? 'without a user' : `as user ${user}`;
  if (err instanceof EtcdPermissionDeniedError) {
    return new StoreAccessError(`permission denied ${what} ${who}`);
  }
  return authRefusal(err, user) ?? (err instanceof Error ? err : new Error(String(err)));
}

/**
 * Checks at start-up that the store lets this client read and write everything under /cron/,
 * so that a missing permission is reported once, clearly, instead of as failures later on. The
 * write check is a txn whose compare can never hold: etcd checks the permissions of both
 * branches before it evaluates anything, and nothing is written.
 */
export async function checkSchedulerAccess(client: Etcd3, user: string | undefined): Promise<void> {
  try {
    await client.getAll().prefix(JOBS_PREFIX).limit(1).keys();
  } catch (err) {
    throw describe(err, `reading ${JOBS_PREFIX}`, user);
  }
  try {
    await client.if(ROOT_PREFIX, 'Mod', '<', 0).then(client.put(ROOT_PREFIX).value('')).commit();
  } catch (err) {
    throw describe(err, `writing ${ROOT_PREFIX}`, user);
  }
}
