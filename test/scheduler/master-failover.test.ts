import { storeKindUnderTest } from '../support/store-under-test.js';
import { describeMasterFailover } from './master-failover-suite.js';

// On real etcd by default (ETCRON_TEST_STORE=etcron switches it); master-failover-etcron.test.ts runs the
// same suite on the bundled store in every `npm test`.
describeMasterFailover(storeKindUnderTest());
