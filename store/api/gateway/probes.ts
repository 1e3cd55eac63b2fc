import type { ServerResponse } from 'node:http';
import { ETCD_VERSION } from '../../server/etcd-server.js';
import type { ApiContext } from '../context.js';

/** etcd answers /health after at most this long. */
const HEALTH_TIMEOUT_MS = 1000;

export function answerVersion(response: ServerResponse): void {
  sendJson(response, 200, { etcdserver: ETCD_VERSION, etcdcluster: '3.4.0' });
}

export async function answerHealth(ctx: ApiContext, response: ServerResponse): Promise<void> {
  const healthy = await isHealthy(ctx);
  sendJson(response, healthy ? 200 : 503, { health: healthy ? 'true' : 'false' });
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'Content-Type': 'application/json' });
  response.end(JSON.stringify(body));
}

/** As etcd: no alarm, a known leader, and a linearizable read that completes in time. */
async function isHealthy(ctx: ApiContext): Promise<boolean> {
  const server = ctx.server;
  if (server.alarms().length > 0 || server.leaderId === 0n) return false;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      server.readBarrier(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), HEALTH_TIMEOUT_MS);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
