import { createServer } from 'node:net';

/** A port on 127.0.0.1 that was free a moment ago (the bench scripts start their servers on it). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}
