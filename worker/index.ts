export { startWorker, type WorkerHandle, type WorkerStats } from './worker.js';
export { WORKER_DEFAULTS, WORKER_LIMITS, type WorkerOptions } from './options.js';
