import { performance } from 'node:perf_hooks';
import { schedulerMetrics } from '../../shared/metrics/scheduler-metrics.js';

/** Runs one housekeeping pass and records its duration and outcome for /metrics. */
export async function observePass(pass: () => Promise<boolean>): Promise<void> {
  const startedMs = performance.now();
  let isOk = false;
  try {
    isOk = await pass();
  } finally {
    schedulerMetrics.housekeepingPassSeconds.observe((performance.now() - startedMs) / 1000);
    schedulerMetrics.housekeepingPasses.inc({ result: isOk ? 'ok' : 'error' });
    if (isOk) schedulerMetrics.housekeepingLastSuccessSeconds.value = Date.now() / 1000;
  }
}
