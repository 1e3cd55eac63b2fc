// A worker as a real process for fault tests (SIGKILL, SIGSTOP). Runs the compiled worker from
// dist/, so `npm run build` must have run. Usage:
//   node test/support/worker-entry.mjs --id w1 --endpoints 127.0.0.1:2379 --ttl 3 [--clock-offset-ms N]
import { parseArgs } from 'node:util';
import { startWorker } from '../../dist/worker/index.js';
import { offsetClock, systemClock } from '../../dist/shared/clock.js';
import { createLogger } from '../../dist/shared/log.js';

const { values } = parseArgs({
  options: {
    id: { type: 'string' },
    endpoints: { type: 'string' },
    ttl: { type: 'string', default: '3' },
    'clock-offset-ms': { type: 'string', default: '0' },
    'takeover-delay-ms': { type: 'string', default: '1000' },
  },
});
const logger = createLogger('info');
const handle = await startWorker({
  id: values.id,
  client: { endpoints: values.endpoints },
  leaseTtlSeconds: Number(values.ttl),
  takeoverDelayMs: Number(values['takeover-delay-ms']),
  clock: offsetClock(systemClock, Number(values['clock-offset-ms'])),
  logger,
});
process.stdout.write(`ready ${handle.id}\n`);
const shutdown = () => {
  handle.stop().finally(() => {
    process.stdout.write(`stats ${JSON.stringify(handle.stats())}\n`);
    process.exit(0);
  });
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
