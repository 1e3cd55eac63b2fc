// The image's HEALTHCHECK, one for every role. It reads the role and its flags from the command
// line of the container's etcron process (PID 1, or its child under `init: true`) and asks:
//   store, up  GET /health on the client port (200 and {"health":"true"} as etcd answers);
//   master     GET /health on the API (open even when the API requires credentials);
//   worker     GET /health on any of its store endpoints: a worker that cannot reach one is idle.
// Exit 0 is healthy, 1 unhealthy, as Docker expects.
import { readFileSync, readdirSync } from 'node:fs';

const ROLES = ['store', 'master', 'worker', 'up'];
const TIMEOUT_MS = 5_000; // within the HEALTHCHECK timeout, with room for a loaded host

function commandLineOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a.length > 0);
  } catch {
    return [];
  }
}

/** The etcron process's arguments after the role word, and the role. */
function findEtcron() {
  const pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).sort((a, b) => Number(a) - Number(b));
  for (const pid of pids.slice(0, 64)) {
    const argv = commandLineOf(pid);
    const at = argv.findIndex((a, i) => i > 0 && ROLES.includes(a) && /etcron/.test(argv[i - 1] ?? ''));
    if (at > 0) return { role: argv[at], args: argv.slice(at + 1) };
  }
  return undefined;
}

function flag(args, name) {
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    for (const prefix of [`--${name}`, `-${name}`]) {
      if (arg === prefix) return args[i + 1];
      if (arg.startsWith(`${prefix}=`)) return arg.slice(prefix.length + 1);
    }
  }
  return undefined;
}

/** host:port or a URL, with a wildcard listen host replaced by loopback. */
function local(address, path) {
  const url = new URL(/^https?:\/\//.test(address) ? address : `http://${address}`);
  if (url.hostname === '0.0.0.0' || url.hostname === '[::]') url.hostname = '127.0.0.1';
  url.pathname = path;
  return url.toString();
}

async function answers(url, check) {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    return response.status === 200 && check(await response.text());
  } catch {
    return false;
  }
}

const storeHealthy = (body) => /"health"\s*:\s*"true"/.test(body);

async function healthy() {
  const found = findEtcron();
  if (found === undefined) return false;
  const { role, args } = found;
  const env = process.env;
  switch (role) {
    case 'store': {
      const listen = flag(args, 'listen-client-urls') ?? env.ETCD_LISTEN_CLIENT_URLS ?? 'http://localhost:2379';
      return answers(local(listen.split(',')[0], '/health'), storeHealthy);
    }
    case 'up':
      return answers(local(`127.0.0.1:${flag(args, 'client-port') ?? '2379'}`, '/health'), storeHealthy);
    case 'master':
      return answers(local(flag(args, 'api') ?? '127.0.0.1:7070', '/health'), () => true);
    case 'worker': {
      const endpoints = (flag(args, 'endpoints') ?? env.ETCRON_ENDPOINTS ?? '127.0.0.1:2379').split(',');
      const results = await Promise.all(endpoints.map((e) => answers(local(e.trim(), '/health'), storeHealthy)));
      return results.includes(true);
    }
    default:
      return false;
  }
}

process.exit((await healthy()) ? 0 : 1);
