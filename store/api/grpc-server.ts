import {
  Server, ServerCredentials, loadPackageDefinition, status, type GrpcObject, type MethodDefinition,
  type ServiceClientConstructor, type ServiceDefinition, type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { decodeFailure } from './context.js';
import { RANGE_END_PRESENT, type Wire } from './codec.js';
import { lockService } from './lock-service.js';
import { electionService } from './election-service.js';
import { loadSync } from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApiContext } from './context.js';
import { kvService } from './kv-service.js';
import { watchService } from './watch-service.js';
import { watchResponseSerializer } from './watch-response-encoder.js';
import { KV_RESPONSE_ENCODERS } from './kv-response-encoder.js';
import { decodePutRequest } from './put-request-decoder.js';
import { leaseService } from './lease-service.js';
import { maintenanceService } from './maintenance-service.js';
import { clusterService } from './cluster-service.js';
import { authService } from './auth-service.js';
import { registerForGateway } from './gateway/index.js';
import { countedService } from '../metrics/index.js';

/** The proto files ship in the source tree; compiled code finds them from dist/ too. */
function protoDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const fromDist = join(here, '..', '..', '..', 'store', 'api', 'proto');
  return here.includes(`${join('dist', 'store')}`) ? fromDist : join(here, 'proto');
}

function loadEtcdProtos(): GrpcObject {
  const definition = loadSync(['rpc.proto', 'v3lock.proto', 'v3election.proto'], {
    includeDirs: [protoDir()],
    keepCase: true,
    longs: String,
    enums: Number,
    defaults: true,
    oneofs: true,
  });
  return loadPackageDefinition(definition);
}

function service(root: GrpcObject, pkgName: string, name: string): ServiceClientConstructor {
  const pkg = root[pkgName] as GrpcObject;
  return pkg[name] as ServiceClientConstructor;
}

/**
 * Decoding happens here rather than in grpc-js so that a refused message gets Go gRPC's words:
 * etcd's clients and tests see "grpc: received message larger than max (N vs. M)" and
 * "grpc: error unmarshalling request: …". The handler finds the failure in the request object.
 */
function withGoDecodeErrors(
  definition: ServiceDefinition, maxBytes: number, fastDecoders: FastDecoders = {},
): ServiceDefinition {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const fallback = method.requestDeserialize;
    const fast = fastDecoders[name];
    const decode = fast === undefined
      ? fallback
      : (bytes: Buffer): unknown => fast(bytes) ?? fallback(bytes);
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        if (bytes.length > maxBytes) {
          return decodeFailure(status.RESOURCE_EXHAUSTED, `grpc: received message larger than max (${bytes.length} vs. ${maxBytes})`);
        }
        try {
          const decoded = decode(bytes);
          if (name === 'Range' && hasEmptyBytesField(bytes, 2)) {
            (decoded as Record<string, unknown>)[RANGE_END_PRESENT] = true;
          }
          return decoded;
        } catch (err) {
          const truncated = err instanceof RangeError || /index out of range/.test(String(err));
          const reason = truncated ? 'unexpected EOF' : 'proto: cannot parse invalid wire-format data';
          return decodeFailure(status.INTERNAL, `grpc: error unmarshalling request: ${reason}`);
        }
      },
    };
  }
  return out;
}

/** Hand-written request decoders by method name; null sends the bytes to proto-loader. */
type FastDecoders = Readonly<Record<string, (bytes: Buffer) => Wire | null>>;

/** KV requests decoded by hand (see put-request-decoder.ts). */
const KV_REQUEST_DECODERS: FastDecoders = { Put: decodePutRequest };

/** gRPC receives up to the request limit plus etcd's 512 KiB allowance for framing. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

/**
 * Whether a top-level length-delimited field is present with zero length. Go keeps such a
 * range_end as an empty non-nil slice, which etcd's MVCC reads as "no upper bound"; proto-loader
 * cannot tell it from an absent field, so we look at the bytes.
 */
function hasEmptyBytesField(bytes: Buffer, fieldNumber: number): boolean {
  let at = 0;
  const varint = (): number => {
    let value = 0;
    let shift = 0;
    for (let i = 0; i < 10 && at < bytes.length; i++) {
      const b = bytes[at++] as number;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
      shift += 7;
    }
    return value;
  };
  while (at < bytes.length) {
    const tag = varint();
    const wire = tag & 7;
    const field = Math.floor(tag / 8);
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const length = varint();
      if (field === fieldNumber && length === 0) return true;
      at += length;
    } else return false;
  }
  return false;
}

/** Event-carrying watch responses skip proto-loader (see watch-response-encoder.ts). */
function withFastWatchResponses(definition: ServiceDefinition): ServiceDefinition {
  const watch = definition['Watch'] as MethodDefinition<unknown, unknown>;
  return { ...definition, Watch: { ...watch, responseSerialize: watchResponseSerializer(watch.responseSerialize) } };
}

/** Range, Put, DeleteRange and Txn answers skip proto-loader (see kv-response-encoder.ts). */
function withFastKvResponses(definition: ServiceDefinition): ServiceDefinition {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const encode = KV_RESPONSE_ENCODERS[name];
    out[name] = encode === undefined ? method : { ...method, responseSerialize: (value) => encode(value as Wire) };
  }
  return out;
}

/** grpc-js refuses larger messages itself; below this our decoder answers with Go's words. */
const TRANSPORT_RECEIVE_BYTES_MAX = 64 * 1024 * 1024;

/** etcd's default --max-concurrent-streams (math.MaxUint32): no limit. */
const UNLIMITED_STREAMS = 4294967295;

export function createGrpcServer(ctx: ApiContext, options: { readonly maxConcurrentStreams?: number } = {}): Server {
  const root = loadEtcdProtos();
  const receiveMax = ctx.limits.maxRequestBytes + GRPC_OVERHEAD_BYTES;
  const add = (pkgName: string, name: string, impl: UntypedServiceImplementation): void => {
    const fastDecoders = name === 'KV' ? KV_REQUEST_DECODERS : {};
    const methods = service(root, pkgName, name).service;
    let definition = withGoDecodeErrors(methods, receiveMax, fastDecoders);
    if (name === 'Watch') definition = withFastWatchResponses(definition);
    if (name === 'KV') definition = withFastKvResponses(definition);
    const counted = countedService(definition, impl); // grpc_server_*_total, gateway calls included
    server.addService(definition, counted);
    registerForGateway(server, definition, counted); // the JSON gateway calls the same handlers
  };
  const server = new Server({
    'grpc.max_receive_message_length': Math.max(TRANSPORT_RECEIVE_BYTES_MAX, receiveMax),
    'grpc.max_send_message_length': 2 ** 31 - 1,
    // etcd lets clients ping every 5 s, also without active calls.
    'grpc.http2.min_ping_interval_without_data_ms': 5000,
    'grpc.keepalive_permit_without_calls': 1,
    // Channelz keeps per-call and per-session counters and timestamps that nothing here reads.
    'grpc.enable_channelz': 0,
    ...(options.maxConcurrentStreams === undefined || options.maxConcurrentStreams >= UNLIMITED_STREAMS
      ? {} : { 'grpc.max_concurrent_streams': options.maxConcurrentStreams }),
  });
  add('etcdserverpb', 'KV', kvService(ctx));
  add('etcdserverpb', 'Watch', watchService(ctx));
  add('etcdserverpb', 'Lease', leaseService(ctx));
  add('etcdserverpb', 'Maintenance', maintenanceService(ctx));
  add('etcdserverpb', 'Cluster', clusterService(ctx));
  add('etcdserverpb', 'Auth', authService(ctx));
  add('v3lockpb', 'Lock', lockService(ctx));
  add('v3electionpb', 'Election', electionService(ctx));
  return server;
}

export function bindServer(server: Server, hostPort: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(hostPort, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
}
