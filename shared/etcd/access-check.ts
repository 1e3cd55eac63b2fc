import { EtcdPermissionDeniedError, type Etcd3 } from 'etcd3';
import { JOBS_PREFIX, ROOT_PREFIX } from '../keys.js';

/** The scheduler lacks a permission it needs on the store; the message names it and the user. */
export class StoreAccessError extends Error {
  override readonly name = 'StoreAccessError';
}

const USER_EMPTY = 'etcdserver: user name is empty';
const AUTH_NOT_ENABLED = 'etcdserver: authentication is not enabled';

function describe(err: unknown, what: string, user: string | undefined): Error {
  const who = user === undefined ? 'without a user' : `as user ${user}`;
  if (err instanceof EtcdPermissionDeniedError)
    return new StoreAccessError(`permission denied ${what} ${who}`);
  if (err instanceof Error && err.message.includes(USER_EMPTY)) {
    return new StoreAccessError(
      `the store requires authentication: pass --user and --password (or ETCRON_USER and ETCRON_PASSWORD)`,
    );
  }
  if (err instanceof Error && err.message.includes(AUTH_NOT_ENABLED) && user !== undefined) {
    return new StoreAccessError(
      `user ${user} was given but the store does not have auth enabled: drop --user (or ETCRON_USER)`,
    );
  }
  return err instanceof Error ? err : new Error(String(err));
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
