export {
  Counter,
  Histogram,
  exponentialBuckets,
  renderFamilies,
  type Family,
  type Sample,
} from './registry.js';
export { serverMetrics } from './server-metrics.js';
export { countedService, handledSamples, startedSamples } from './grpc-metrics.js';
