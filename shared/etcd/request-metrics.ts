import { performance } from 'node:perf_hooks';
import { InterceptingCall, status, type Interceptor } from '@grpc/grpc-js';
import { schedulerMetrics } from '../metrics/scheduler-metrics.js';

/**
 * A gRPC client interceptor timing every unary store request from send to status, by method
 * (Range, Txn, LeaseGrant, ...). Streams (watches, keep-alives) live for minutes: not timed.
 */
export const storeRequestTiming: Interceptor = (options, nextCall) => {
  const definition = options.method_definition;
  if (definition.requestStream || definition.responseStream) {
    return new InterceptingCall(nextCall(options));
  }
  const method = definition.path.slice(definition.path.lastIndexOf('/') + 1);
  const startedMs = performance.now();
  return new InterceptingCall(nextCall(options), {
    start: (metadata, listener, next) => {
      next(metadata, {
        onReceiveStatus: (result, nextStatus) => {
          const seconds = (performance.now() - startedMs) / 1000;
          schedulerMetrics.storeRequestSeconds.observe({ method }, seconds);
          if (result.code !== status.OK) {
            const code = status[result.code] ?? String(result.code);
            schedulerMetrics.storeRequestErrors.inc({ method, code });
          }
          nextStatus(result);
        },
      });
    },
  });
};
