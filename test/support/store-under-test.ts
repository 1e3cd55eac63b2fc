import { hasEtcd, startEtcd, startEtcronStore, type StartOptions, type StoreProcess } from './etcd-process.js';

/**
 * The store scheduler tests run against: real etcd by default, the bundled store with
 * ETCRON_TEST_STORE=etcron. Scheduler code speaks only the etcd v3 API, so both must pass.
 */
export type StoreKind = 'etcd' | 'etcron';

export function storeKindUnderTest(): StoreKind {
  return process.env['ETCRON_TEST_STORE'] === 'etcron' ? 'etcron' : 'etcd';
}

/**
 * Whether the store under test can be started: the bundled store always can; real etcd must be
 * installed (and under CI=true its absence fails instead of skipping, see hasEtcd).
 */
export function hasStoreUnderTest(): boolean {
  return storeKindUnderTest() === 'etcron' || hasEtcd();
}

export function startStoreUnderTest(options: StartOptions = {}): Promise<StoreProcess> {
  return startStore(storeKindUnderTest(), options);
}

/** A store of the given kind, whatever ETCRON_TEST_STORE says. */
export function startStore(kind: StoreKind, options: StartOptions = {}): Promise<StoreProcess> {
  return kind === 'etcron' ? startEtcronStore(options) : startEtcd(options);
}
