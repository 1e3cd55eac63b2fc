import { storeKindUnderTest } from '../support/store-under-test.js';
import { describeWorkerFaults } from './worker-faults-suite.js';

// On real etcd by default; `npm test` runs it again with ETCRON_TEST_STORE=etcron (the bundled store).
describeWorkerFaults(storeKindUnderTest());
