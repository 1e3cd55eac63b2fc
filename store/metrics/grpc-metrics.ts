import type {
  MethodDefinition,
  ServiceDefinition,
  UntypedHandleCall,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import type { Sample } from './registry.js';

/** go-grpc-prometheus' names of the gRPC codes, indexed by code. */
export const GRPC_CODE_NAMES: readonly string[] = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
];

type GrpcType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

/** One method's counters; `handled[code]` counts completions by gRPC code. */
interface MethodCounters {
  readonly service: string;
  readonly method: string;
  readonly type: GrpcType;
  started: number;
  readonly handled: number[];
}

const methods: MethodCounters[] = [];

function typeOf(definition: MethodDefinition<unknown, unknown>): GrpcType {
  if (definition.requestStream) return definition.responseStream ? 'bidi_stream' : 'client_stream';
  return definition.responseStream ? 'server_stream' : 'unary';
}

function countersFor(definition: MethodDefinition<unknown, unknown>): MethodCounters {
  const [, service = '', method = ''] = /^\/([^/]+)\/([^/]+)$/.exec(definition.path) ?? [];
  const existing = methods.find((m) => m.service === service && m.method === method);
  if (existing !== undefined) return existing;
  const created: MethodCounters = {
    service,
    method,
    type: typeOf(definition),
    started: 0,
    handled: GRPC_CODE_NAMES.map(() => 0),
  };
  methods.push(created);
  return created;
}

function codeOf(err: unknown): number {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'number' && code >= 0 && code < GRPC_CODE_NAMES.length
    ? code
    : status.UNKNOWN;
}

function count(counters: MethodCounters, code: number): void {
  counters.handled[code] = (counters.handled[code] ?? 0) + 1;
}

type Callback = (err: unknown, ...rest: unknown[]) => void;
interface StreamCall {
  end(...args: unknown[]): unknown;
  destroy(err?: unknown): unknown;
  on(event: string, listener: () => void): unknown;
  prependListener(event: string, listener: (err: unknown) => void): unknown;
}

/** Wraps one handler so each call counts as started, then as handled with its final code. */
function countedHandler(
  definition: MethodDefinition<unknown, unknown>,
  handler: UntypedHandleCall,
): UntypedHandleCall {
  const counters = countersFor(definition);
  const handle = handler as (call: unknown, callback?: Callback) => void;
  if (!definition.responseStream) {
    // Unary and client-streaming calls finish through their callback.
    return ((call: unknown, callback: Callback) => {
      counters.started++;
      handle(call, (err, ...rest) => {
        count(counters, err === null || err === undefined ? status.OK : codeOf(err));
        callback(err, ...rest);
      });
    }) as UntypedHandleCall;
  }
  // Streams finish by end() (OK), destroy(err), or the client cancelling.
  return ((call: StreamCall) => {
    counters.started++;
    let isCounted = false;
    const finish = (code: number): void => {
      if (isCounted) return;
      isCounted = true;
      count(counters, code);
    };
    const end = call.end.bind(call);
    const destroy = call.destroy.bind(call);
    call.end = (...args: unknown[]) => {
      finish(status.OK);
      return end(...args);
    };
    call.destroy = (err?: unknown) => {
      finish(err === undefined ? status.CANCELLED : codeOf(err));
      return destroy(err);
    };
    call.on('cancelled', () => finish(status.CANCELLED));
    // A handler fails a stream by emitting 'error' (failStream); grpc-js's own listener then ends
    // the stream, which would count as OK: count the error's code first.
    call.prependListener('error', (err: unknown) => finish(codeOf(err)));
    handle(call);
  }) as UntypedHandleCall;
}

/** The implementation with every handler counted under its gRPC method. */
export function countedService(
  definition: ServiceDefinition,
  implementation: UntypedServiceImplementation,
): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler = implementation[name];
    if (handler !== undefined)
      out[name] = countedHandler(method as MethodDefinition<unknown, unknown>, handler);
  }
  return out;
}

function labels(m: MethodCounters): Record<string, string> {
  return { grpc_method: m.method, grpc_service: m.service, grpc_type: m.type };
}

export function startedSamples(): Sample[] {
  return methods.map((m) => [labels(m), m.started] as const);
}

/** Every code of every method, zeros included, as go-grpc-prometheus pre-registers them. */
export function handledSamples(): Sample[] {
  return methods.flatMap((m) =>
    m.handled.map(
      (count, code) =>
        [{ ...labels(m), grpc_code: GRPC_CODE_NAMES[code] ?? 'Unknown' }, count] as const,
    ),
  );
}
