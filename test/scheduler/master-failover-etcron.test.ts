import { describeMasterFailover } from './master-failover-suite.js';

// The same suite as master-failover.test.ts, on the bundled store (`etcron store`), so CI covers both (issue 5).
describeMasterFailover('etcron');
