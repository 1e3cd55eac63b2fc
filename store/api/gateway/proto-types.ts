import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/**
 * The message types of our etcd protos as protobufjs reflection, which the JSON codec walks.
 * The same .proto files grpc-server.ts loads for gRPC, so field names and numbers agree.
 */
function protoDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // Compiled code runs from dist/store/api/gateway; the protos stay in the source tree.
  const fromDist = join(here, '..', '..', '..', '..', 'store', 'api', 'proto');
  return here.includes(join('dist', 'store')) ? fromDist : join(here, '..', 'proto');
}

let root: protobuf.Root | null = null;

function loadRoot(): protobuf.Root {
  if (root !== null) return root;
  const dir = protoDir();
  const loaded = new protobuf.Root();
  loaded.loadSync(
    ['rpc.proto', 'v3lock.proto', 'v3election.proto'].map((file) => join(dir, file)),
    {
      keepCase: true,
    },
  );
  loaded.resolveAll();
  root = loaded;
  return loaded;
}

export interface MethodTypes {
  readonly request: protobuf.Type;
  readonly response: protobuf.Type;
}

/** Resolved once per method; the gateway asks on every request. */
const byPath = new Map<string, MethodTypes>();

/** The request and response types of a gRPC method, by its path ("/etcdserverpb.KV/Range"). */
export function methodTypes(grpcPath: string): MethodTypes {
  const cached = byPath.get(grpcPath);
  if (cached !== undefined) return cached;
  const resolved = resolveMethodTypes(grpcPath);
  byPath.set(grpcPath, resolved);
  return resolved;
}

function resolveMethodTypes(grpcPath: string): MethodTypes {
  const match = /^\/([^/]+)\/([^/]+)$/.exec(grpcPath);
  if (match === null) throw new Error(`not a gRPC method path: ${grpcPath}`);
  const service = loadRoot().lookupService(match[1] as string);
  const method = service.methods[match[2] as string];
  if (method === undefined) throw new Error(`no method ${grpcPath}`);
  method.resolve();
  const request = method.resolvedRequestType;
  const response = method.resolvedResponseType;
  if (request === null || response === null) throw new Error(`unresolved types of ${grpcPath}`);
  return { request, response };
}
