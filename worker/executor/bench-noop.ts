import type { RunningProcess, StopCause } from './process-group.js';

/**
 * FOR BENCHMARKS ONLY (scripts/bench-scheduler.mjs). A job whose command is exactly this string
 * succeeds in-process, without spawning anything, on a worker started with `benchNoopExecutor`.
 * It measures the scheduler (claims, fencing, reports) apart from process-spawn cost, which on
 * 2 cores caps shell starts near 30/s. Workers started any other way run it as a shell command
 * (and it fails: no such program), so it never silently changes a production job.
 */
export const BENCH_NOOP_COMMAND = 'etcron:bench-noop';

/** A run that exits 0 on the next event-loop turn; stop() before then records the cause. */
export function startBenchNoop(): RunningProcess {
  let stopCause: StopCause | undefined;
  const exited = new Promise<{ exitCode: number; signal: null; outputTail: string; stopCause?: StopCause }>((resolve) => {
    setImmediate(() => resolve({ exitCode: 0, signal: null, outputTail: '', ...(stopCause === undefined ? {} : { stopCause }) }));
  });
  return {
    pid: undefined,
    exited,
    outputTail: () => '',
    stop: (cause) => { stopCause ??= cause; },
  };
}
