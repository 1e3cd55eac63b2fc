import { METRICS_CONTENT_TYPE } from '../shared/metrics/metrics-server.js';
import { renderSchedulerMetrics } from '../shared/metrics/scheduler-metrics.js';
import type { Route } from './http-server.js';

/** GET /metrics on the API port: the scheduler's metrics plus whether this master leads. */
export function metricsRoute(isLeader: () => boolean): Route {
  return {
    method: 'GET',
    path: '/metrics',
    // Scrapers carry no store user; the counters hold no job names or specs.
    isPublic: true,
    handler: async (context) => {
      const text = renderSchedulerMetrics([{
        name: 'etcron_master_leader', type: 'gauge',
        help: '1 while this master is the elected leader.',
        collect: () => [[{}, isLeader() ? 1 : 0]],
      }]);
      context.response.writeHead(200, {
        'content-type': METRICS_CONTENT_TYPE,
        'content-length': Buffer.byteLength(text),
      });
      context.response.end(text);
      return 'streamed';
    },
  };
}
