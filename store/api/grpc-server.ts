import { Server, ServerCredentials, type GrpcObject, type ServiceClientConstructor, loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApiContext } from './context.js';
import { kvService } from './kv-service.js';
import { watchService } from './watch-service.js';
import { leaseService } from './lease-service.js';
import { maintenanceService } from './maintenance-service.js';
import { clusterService } from './cluster-service.js';
import { authService } from './auth-service.js';

/** The proto files ship in the source tree; compiled code finds them from dist/ too. */
function protoDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const fromDist = join(here, '..', '..', '..', 'store', 'api', 'proto');
  return here.includes(`${join('dist', 'store')}`) ? fromDist : join(here, 'proto');
}

function loadEtcdProtos(): GrpcObject {
  const definition = loadSync(['rpc.proto'], {
    includeDirs: [protoDir()],
    keepCase: true,
    longs: String,
    enums: Number,
    defaults: true,
    oneofs: true,
  });
  return loadPackageDefinition(definition);
}

function service(root: GrpcObject, name: string): ServiceClientConstructor {
  const pkg = root['etcdserverpb'] as GrpcObject;
  return pkg[name] as ServiceClientConstructor;
}

/** gRPC receives up to the request limit plus etcd's 512 KiB allowance for framing. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

export function createGrpcServer(ctx: ApiContext): Server {
  const root = loadEtcdProtos();
  const server = new Server({
    'grpc.max_receive_message_length': ctx.limits.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': 2 ** 31 - 1,
    // etcd lets clients ping every 5 s, also without active calls.
    'grpc.http2.min_ping_interval_without_data_ms': 5000,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(service(root, 'KV').service, kvService(ctx));
  server.addService(service(root, 'Watch').service, watchService(ctx));
  server.addService(service(root, 'Lease').service, leaseService(ctx));
  server.addService(service(root, 'Maintenance').service, maintenanceService(ctx));
  server.addService(service(root, 'Cluster').service, clusterService(ctx));
  server.addService(service(root, 'Auth').service, authService(ctx));
  return server;
}

export function bindServer(server: Server, hostPort: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(hostPort, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
}
