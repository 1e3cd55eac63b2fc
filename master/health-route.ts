import type { Etcd3 } from 'etcd3';
import { ok, type Route } from './http-server.js';

/**
 * GET /health, open even when the API requires credentials (container health checks carry
 * none): 200 when this master reaches the store, 503 `ETCRON_STORE_UNAVAILABLE` when it does not.
 * It says nothing about jobs or users.
 */
export function healthRoute(client: Etcd3, id: string): Route {
  return {
    method: 'GET',
    path: '/health',
    isPublic: true,
    handler: async () => {
      await client.maintenance.status();
      return ok({ health: 'true', master: id });
    },
  };
}
