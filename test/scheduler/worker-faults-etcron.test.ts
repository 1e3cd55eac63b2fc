import { describeWorkerFaults } from './worker-faults-suite.js';

// The same suite as worker-faults.test.ts, on the bundled store (`etcron store`), so CI covers both (issue 5).
describeWorkerFaults('etcron');
