// The exposition format is shared with the scheduler's metrics (shared/metrics).
export * from '../../shared/metrics/registry.js';
