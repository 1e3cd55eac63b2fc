import type {
  MethodDefinition,
  Server as GrpcServer,
  ServiceDefinition,
  UntypedHandleCall,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';

/** A method as grpc-js serves it: its (de)serializers and the handler registered for it. */
export interface RegisteredMethod {
  readonly definition: MethodDefinition<unknown, unknown>;
  readonly handler: UntypedHandleCall;
}

/** By server, then by gRPC path ("/etcdserverpb.KV/Range"). */
const registry = new WeakMap<GrpcServer, Map<string, RegisteredMethod>>();

/**
 * Records a service added to `server`, so the JSON gateway calls the very handlers and decoders
 * gRPC clients reach (including services other modules register later, such as Auth).
 */
export function registerForGateway(
  server: GrpcServer,
  definition: ServiceDefinition,
  implementation: UntypedServiceImplementation,
): void {
  let methods = registry.get(server);
  if (methods === undefined) {
    methods = new Map();
    registry.set(server, methods);
  }
  for (const [name, method] of Object.entries(definition)) {
    const handler = implementation[name] ?? implementation[method.originalName ?? name];
    if (handler !== undefined) {
      methods.set(method.path, {
        definition: method as MethodDefinition<unknown, unknown>,
        handler,
      });
    }
  }
}

export function registeredMethod(server: GrpcServer, path: string): RegisteredMethod | undefined {
  return registry.get(server)?.get(path);
}

/** Whether any method of `service` ("etcdserverpb.KV") is registered on `server`. */
export function isRegisteredService(server: GrpcServer, service: string): boolean {
  const prefix = `/${service}/`;
  for (const path of registry.get(server)?.keys() ?? []) if (path.startsWith(prefix)) return true;
  return false;
}
