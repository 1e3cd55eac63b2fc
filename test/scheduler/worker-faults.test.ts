import { storeKindUnderTest } from '../support/store-under-test.js';
import { describeWorkerFaults } from './worker-faults-suite.js';

// On real etcd by default (ETCRON_TEST_STORE=etcron switches it); worker-faults-etcron.test.ts runs the
// same suite on the bundled store in every `npm test`.
describeWorkerFaults(storeKindUnderTest());
