import { storeKindUnderTest } from '../support/store-under-test.js';
import { describeMasterFailover } from './master-failover-suite.js';

// On real etcd by default; `npm test` runs it again with ETCRON_TEST_STORE=etcron (the bundled store).
describeMasterFailover(storeKindUnderTest());
